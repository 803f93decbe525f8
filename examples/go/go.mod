module wasq.dev/examples

go 1.24

require wasq.dev/guest v0.0.0

replace wasq.dev/guest => ../../guest-sdk/go
