
src"
hi

late
srcPassThrough