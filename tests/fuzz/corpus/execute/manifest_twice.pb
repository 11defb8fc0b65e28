

merged
src"
hi

srcPassThrough