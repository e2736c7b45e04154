// field targets: the permission to project a field cannot be written as a literal either; C needs no permission to add an offset to a peer's address.
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
    let token = safeverbs::FieldToken { _private: () };
    let _secret: safeverbs::Exposed<Kv, safeverbs::Server, u64> =
        safeverbs::Project::project::<u64>(&conn.peer(), 8, token);
}

fn main() {}
