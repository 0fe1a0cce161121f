//! Counting the calls under way, so shutdown can wait for them and no longer: HTTP/2's
//! graceful close would also wait for connections on which no call runs (a client that
//! connected and went silent), forever.

use tokio::sync::watch;

/// The number of calls running, shared by the services.
#[derive(Debug, Clone)]
pub struct Calls {
    running: watch::Sender<usize>,
}

/// One running call; dropping it ends the call (for a streamed answer, the stream owns it).
#[derive(Debug)]
pub struct CallGuard {
    running: watch::Sender<usize>,
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            running: watch::Sender::new(0),
        }
    }
}

impl Calls {
    /// Counts one call until the guard drops.
    pub fn begin(&self) -> CallGuard {
        self.running.send_modify(|n| *n += 1);
        CallGuard {
            running: self.running.clone(),
        }
    }

    /// Completes when no call runs.
    pub async fn idle(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|n| *n == 0).await;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}
