// field targets: only the field layout the derive generates projects a peer's region, to a visible field; C computes any address from a base and an offset, here the server's secret at offset 8.
use safeverbs::{Client, Connection};

mod protocol {
    use safeverbs::{Rc, RdmaPod};

    #[derive(RdmaPod, Clone, Copy)]
    #[repr(C)]
    pub struct Request {
        pub seq: u64,
    }

    /// The server exposes `seen` to the client; `secret` is its own.
    #[derive(RdmaPod, Clone, Copy)]
    #[repr(C)]
    pub struct Mailbox {
        pub seen: u64,
        secret: u64,
    }

    safeverbs::connection! {
        pub struct Kv: Rc {
            client sends Request;
            server sends Request, exposes Mailbox;
        }
    }
}
use protocol::Kv;

fn misuse(conn: &Connection<Kv, Client>) {
    let _secret: safeverbs::Exposed<Kv, safeverbs::Server, u64> =
        safeverbs::Project::project::<u64>(&conn.peer(), 8);
}

fn main() {}
