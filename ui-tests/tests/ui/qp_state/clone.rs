// queue-pair typestate: `QueuePair` is not `Clone`, so no copy keeps an old state after a transition; C copies the `ibv_qp *` freely.
use safeverbs::{Init, QueuePair, Rc};

fn misuse(qp: QueuePair<Rc, Init>) {
    let _twin = qp.clone();
}

fn main() {}
