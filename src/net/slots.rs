//! A resizable bound on things held at once (client connections, one master's backend
//! connections): permits of a semaphore whose total can be changed while permits are out.
//! Growing adds permits at once; shrinking takes back the free ones at once and the rest
//! as their holders return them — nothing held is taken away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A bound of `max` permits that [`Slots::resize`] may change at any time.
#[derive(Debug)]
pub struct Slots {
    sem: Arc<Semaphore>,
    /// (permits that exist, permits wanted).
    sizes: Mutex<(usize, usize)>,
    /// More permits exist than are wanted: free ones are taken back before a new one is lent.
    owed: AtomicBool,
}

impl Slots {
    /// `max` permits.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Slots {
            sem: Arc::new(Semaphore::new(max)),
            sizes: Mutex::new((max, max)),
            owed: AtomicBool::new(false),
        })
    }

    /// Changes the bound: more permits at once, fewer as they come free.
    pub fn resize(&self, max: usize) {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner()).1 = max;
        self.owed.store(true, Ordering::Release);
        self.settle();
    }

    /// Brings the permits that exist towards the bound.
    fn settle(&self) {
        let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        let (exist, wanted) = *sizes;
        if wanted > exist {
            self.sem.add_permits(wanted - exist);
            sizes.0 = wanted;
        } else if exist > wanted {
            sizes.0 -= self.sem.forget_permits(exist - wanted);
        }
        self.owed.store(sizes.0 != sizes.1, Ordering::Release);
    }

    /// A permit if one is free within the bound (one atomic load more than a semaphore's).
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        if self.owed.load(Ordering::Acquire) {
            self.settle();
        }
        Arc::clone(&self.sem).try_acquire_owned().ok()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Permits held now.
    pub fn in_use(&self) -> usize {
        let exist = self.sizes.lock().unwrap_or_else(|e| e.into_inner()).0;
        exist.saturating_sub(self.sem.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_takes_back_free_permits_at_once_and_held_ones_as_they_return() {
        let slots = Slots::new(4);
        let held: Vec<_> = (0..3).map(|_| slots.try_acquire().unwrap()).collect();
        slots.resize(2);
        assert_eq!(slots.in_use(), 3, "nothing held is taken away");
        assert!(slots.try_acquire().is_none());
        let mut held = held.into_iter();
        drop(held.next());
        assert!(slots.try_acquire().is_none(), "2 held: at the bound");
        drop(held.next());
        let again = slots.try_acquire();
        assert!(again.is_some());
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.in_use(), 2);
        slots.resize(5);
        assert_eq!(slots.max(), 5);
        let more: Vec<_> = (0..3).filter_map(|_| slots.try_acquire()).collect();
        assert_eq!(more.len(), 3);
        assert!(slots.try_acquire().is_none());
    }
}
