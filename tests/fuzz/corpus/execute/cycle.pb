
,
fuzz	
aGain	
bGain
ab
ba