// field targets: a field layout is made by the library's fields(), not by calling the generated code on a base of the caller's choosing; C applies any struct's offsets to any pointer.
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

fn misuse(conn: &Connection<Kv, Client>) {
    let _fields = <Mailbox as safeverbs::HasFields>::project_fields(&conn.peer());
}

fn main() {}
