// sealed typestate: only the library's states exist, a user cannot invent one that allows `send`; C casts any integer to `enum ibv_qp_state`.
use safeverbs::State;

enum Reset {}

impl State for Reset {}

fn main() {}
