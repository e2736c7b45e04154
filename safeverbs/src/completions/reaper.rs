//! The background reaper: completion queues whose every handle is gone
//! while requests are still in flight (the flushes of a dropped queue pair,
//! the completions of dropped futures) are polled here until nothing is
//! left, so that their resources are released and the queue pairs and the
//! queue itself are destroyed. Nothing in a `Drop` waits for it.
//!
//! One thread for the process, started on first use. A queue that makes
//! no progress for [`GIVE_UP`] is let go with an error log: what is left is
//! held by forgotten futures (`mem::forget`), which only ever leak.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::completions::cq::CqInner;

/// How often the adopted queues are polled.
const TICK: Duration = Duration::from_millis(5);

/// How long a queue may make no progress before it is let go.
const GIVE_UP: Duration = Duration::from_secs(10);

struct Adopted {
    cq: Arc<CqInner>,
    last_progress: Instant,
}

#[derive(Default)]
struct Reaper {
    queues: Mutex<Vec<Adopted>>,
    work: Condvar,
}

static REAPER: OnceLock<Result<Arc<Reaper>, String>> = OnceLock::new();

/// Hands `cq` to the reaper. Never blocks (beyond a short lock).
pub(crate) fn adopt(cq: Arc<CqInner>) {
    let reaper = REAPER.get_or_init(|| {
        let reaper = Arc::new(Reaper::default());
        let worker = reaper.clone();
        std::thread::Builder::new()
            .name("safeverbs-reaper".into())
            .spawn(move || worker.run())
            .map(|_| reaper)
            .map_err(|e| e.to_string())
    });
    match reaper {
        Ok(reaper) => {
            let mut queues = crate::sync::lock(&reaper.queues);
            queues.push(Adopted {
                cq,
                last_progress: Instant::now(),
            });
            reaper.work.notify_one();
        }
        Err(e) => tracing::error!(
            error = %e,
            in_flight = cq.slots().live(),
            "could not start the reaper thread; leaking a completion queue with requests in flight"
        ),
    }
}

impl Reaper {
    fn run(&self) {
        let mut queues = crate::sync::lock(&self.queues);
        loop {
            if queues.is_empty() {
                queues = self.work.wait(queues).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Poll without holding the list, so `adopt` never waits on a
            // poll; what is dropped here (queue pairs, the queue) is
            // destroyed outside the lock too.
            let mut mine = std::mem::take(&mut *queues);
            drop(queues);
            let now = Instant::now();
            mine.retain_mut(|a| {
                match a.cq.poll() {
                    Ok(0) => {}
                    Ok(_) => a.last_progress = now,
                    Err(e) => tracing::error!(%e, "the reaper could not poll a completion queue"),
                }
                let left = a.cq.slots().live();
                if left > 0 && now.duration_since(a.last_progress) > GIVE_UP {
                    tracing::error!(
                        in_flight = left,
                        "no completion for {GIVE_UP:?}; leaking a completion queue (forgotten \
                         futures hold its requests)"
                    );
                    return false;
                }
                left > 0
            });
            std::thread::sleep(TICK);
            queues = crate::sync::lock(&self.queues);
            queues.append(&mut mine);
        }
    }
}
