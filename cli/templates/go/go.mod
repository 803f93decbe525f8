module {{crate}}

go 1.24

require wasq.dev/guest v0.0.0

// The Go SDK, copied here by `wasq plugin new` (guest-sdk/go in Wasq's repository).
replace wasq.dev/guest => ./wasq-guest
