//! Graceful stop on SIGTERM or SIGINT.
//!
//! A [`Shutdown`] is a cheap, cloneable handle that every thread holds. The trigger drops the
//! only sender of a channel, so every receiver wakes at once: threads can block on it in
//! `select!` beside their work channels, or sleep with [`Shutdown::sleep`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::{Error, Result};

/// Handle that tells whether a stop was requested.
#[derive(Clone)]
pub struct Shutdown {
    rx: Receiver<()>,
    flag: Arc<AtomicBool>,
}

/// Requests the stop: every [`Shutdown`] of the pair sees it.
pub struct Trigger {
    tx: Mutex<Option<Sender<()>>>,
    flag: Arc<AtomicBool>,
}

impl Trigger {
    /// Requests the stop. Calling it again does nothing.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        crate::sync::lock(&self.tx).take();
    }
}

impl Shutdown {
    /// A new handle and the trigger that fires it.
    pub fn new() -> (Arc<Trigger>, Shutdown) {
        let (tx, rx) = crossbeam_channel::bounded(0);
        let flag = Arc::new(AtomicBool::new(false));
        let trigger = Trigger {
            tx: Mutex::new(Some(tx)),
            flag: flag.clone(),
        };
        (Arc::new(trigger), Shutdown { rx, flag })
    }

    /// A handle fired by the first SIGTERM or SIGINT (a second one exits at once), and the
    /// trigger that fires it from within (a part that failed for good).
    pub fn on_signals() -> Result<(Arc<Trigger>, Shutdown)> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(|e| Error::System {
                what: "signal handler".into(),
                msg: e.to_string(),
            })?;
        let (trigger, shutdown) = Shutdown::new();
        let on_signal = trigger.clone();
        crate::sync::spawn("signals", move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    log::warn!("second signal {signal}: exiting now");
                    std::process::exit(130);
                }
                log::info!("signal {signal}: stopping gracefully");
                on_signal.trigger();
            }
        })?;
        Ok((trigger, shutdown))
    }

    /// Whether the stop was requested.
    pub fn is_requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`; returns `true` at once if the stop is (or gets) requested.
    pub fn sleep(&self, d: Duration) -> bool {
        matches!(
            self.rx.recv_timeout(d),
            Ok(()) | Err(RecvTimeoutError::Disconnected)
        )
    }

    /// Channel that becomes disconnected on stop, for `crossbeam_channel::select!`.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn trigger_wakes_sleepers() {
        let (trigger, shutdown) = Shutdown::new();
        let s2 = shutdown.clone();
        assert!(!shutdown.is_requested());
        assert!(!shutdown.sleep(Duration::from_millis(10)));
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        trigger.trigger();
        assert!(t.join().unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(shutdown.is_requested());
        assert!(shutdown.sleep(Duration::from_secs(30)));
    }
}
