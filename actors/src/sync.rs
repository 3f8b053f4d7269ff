//! Locks that outlive a panic. A thread that panics while holding a lock
//! poisons it; every lock in sessiond guards state that stays consistent
//! between statements (a map, a counter, a snapshot pointer), so the
//! holder's panic leaves nothing half-written and the lock is taken anyway.
//! This is the one place that decision is written.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`] that recovers a poisoned lock.
pub trait MutexExt<T: ?Sized> {
    /// The guard, whether or not an earlier holder panicked.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> MutexExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// [`RwLock::read`] and [`RwLock::write`] that recover a poisoned lock.
pub trait RwLockExt<T: ?Sized> {
    /// A read guard, whether or not an earlier writer panicked.
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    /// The write guard, whether or not an earlier writer panicked.
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_lock_is_taken_anyway() {
        let m = Arc::new(Mutex::new(1));
        let m2 = Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison");
        })
        .join();
        assert!(m.is_poisoned());
        *m.locked() += 1;
        assert_eq!(*m.locked(), 2);

        let rw = Arc::new(RwLock::new(1));
        let rw2 = Arc::clone(&rw);
        let _ = std::thread::spawn(move || {
            let _g = rw2.write();
            panic!("poison");
        })
        .join();
        assert!(rw.is_poisoned());
        *rw.write_locked() += 1;
        assert_eq!(*rw.read_locked(), 2);
    }
}
