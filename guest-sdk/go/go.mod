module wasq.dev/guest

go 1.24
