// sealed segment modes: only `Ro` and `Rw` exist, a user cannot add a mode that skips the overlap rules; C has no modes at all.
use safeverbs::Mode;

enum Shared {}

impl Mode for Shared {}

fn main() {}
