

fuzz
calc
Calculator7
calc/-
+{"operation": "divide", "operands": [1, 3]}