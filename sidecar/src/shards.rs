//! Per-worker slots for what every request updates (metric counts, route windows, access
//! log lines, idle upstream connections). Each worker thread takes a slot of its own, on a
//! cache line of its own, the first time it asks: a request's update neither waits on
//! another worker nor takes a cache line from it. Readers (a scrape, a report, the log
//! writer) visit every slot.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Slots: a thread's index modulo this picks its own. More than a sidecar's workers, so
/// they never share; other threads that record (rarely) may share one, which costs a wait.
const SLOTS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Slot<T>(Mutex<T>);

/// A `T` per worker.
pub struct Sharded<T>(Box<[Slot<T>]>);

impl<T> std::fmt::Debug for Sharded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sharded({} slots)", self.0.len())
    }
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Sharded((0..SLOTS).map(|_| Slot::default()).collect())
    }
}

impl<T> Sharded<T> {
    /// This thread's slot.
    pub fn mine(&self) -> MutexGuard<'_, T> {
        lock(&self.0[thread_index() % SLOTS].0)
    }

    /// Every slot, in turn.
    pub fn each(&self) -> impl Iterator<Item = MutexGuard<'_, T>> {
        self.0.iter().map(|s| lock(&s.0))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's index, handed out in turn the first time it is asked for.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
    }
    INDEX.with(|i| {
        i.get().unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            i.set(Some(n));
            n
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count_in_slots_of_their_own_and_readers_see_them_all() {
        let counts = std::sync::Arc::new(Sharded::<u64>::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counts = counts.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| *counts.mine() += 1))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counts.each().map(|c| *c).sum::<u64>(), 4000);
        assert_eq!(counts.each().filter(|c| **c == 1000).count(), 4, "each thread had a slot to itself");
    }
}
