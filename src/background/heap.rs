//! Freed heap given back to the operating system.
//!
//! glibc's allocator keeps memory it was given back in its arenas for reuse, and returns to the
//! system only a free stretch at the very top of a heap. After a reconnect storm (thousands of
//! lockers' connections set up at once, their first messages parsed and handled) the gateway's
//! heap is full of such holes: about 1.5 KiB per locker of resident memory that nothing uses.
//! `malloc_trim` hands the whole free pages among them back. It takes a few milliseconds on a
//! heap of a few hundred megabytes, so it runs now and then, off the async workers. On other C
//! libraries (musl, macOS) there is nothing to do and the task ends at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the freed heap is given back.
pub const EVERY: Duration = Duration::from_secs(10);

/// Whether a task of this process gives freed heap back already: the allocator is the
/// process's, so one is enough however many gateways a process runs (the tests run hundreds).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Gives freed heap back every [`EVERY`] until `shutdown`; returns at once where another task of
/// the process does it already (it hands over when its gateway stops).
pub async fn give_back_freed_heap(shutdown: CancellationToken) {
    if !supported() || RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    struct HandOver;
    impl Drop for HandOver {
        fn drop(&mut self) {
            RUNNING.store(false, Ordering::Release);
        }
    }
    let _hand_over = HandOver;
    let mut interval = tokio::time::interval(EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Err(e) = tokio::task::spawn_blocking(trim).await {
            tracing::warn!(error = %e, "giving freed heap back failed");
        }
    }
}

/// Whether this build's allocator can give freed heap back (glibc).
pub const fn supported() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
}

/// Gives the whole free pages of every arena back; whether any were.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists; any thread may call it.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// Resident memory of this process, in bytes.
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn holes_left_by_freed_small_allocations_are_given_back() {
        std::thread::spawn(|| {
            // 64 MiB in 4 KiB blocks (below the mmap threshold: they come from the heap), then
            // all freed but the last, which keeps the heap from shrinking at its top.
            let mut blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![1u8; 4096]).collect();
            let last = blocks.pop();
            drop(blocks);
            let before = resident();
            assert!(super::trim(), "nothing given back");
            let after = resident();
            assert!(
                before - after.min(before) >= 32 << 20,
                "resident {before} bytes before, {after} after"
            );
            drop(last);
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn one_task_per_process_gives_heap_back() {
        let first = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(super::give_back_freed_heap(first.clone()));
        tokio::task::yield_now().await;
        // A second gateway in the same process: its task ends at once.
        let second = tokio_util::sync::CancellationToken::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            super::give_back_freed_heap(second),
        )
        .await
        .expect("a second task returns at once");
        first.cancel();
        running.await.expect("the first ends");
        assert!(!super::RUNNING.load(std::sync::atomic::Ordering::Acquire));
    }
}
