// field targets: an Exposed target is handed out by its connection only, never made from a descriptor; C writes to any address and rkey it has, from any connection.
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
use protocol::{Kv, Mailbox};

fn misuse(conn: &Connection<Kv, Client>, remote: safeverbs::RemoteSegment<Mailbox>) {
    let _target = safeverbs::Exposed::<Kv, safeverbs::Server, Mailbox>::new(remote, conn.id());
}

fn main() {}
