//! Concurrency accounting, as Lambda does it: a function with a reservation
//! (`concurrency = N`) may run N at once and those N are carved out of the account's
//! pool; every other function shares what is left. Admission is one atomic
//! compare-and-swap, so a limit holds exactly however many callers race for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use updraft_model::FunctionName;

/// `FunctionLimit::reserved` when the function has no reservation.
const UNRESERVED: u32 = u32::MAX;

/// Which limit refused an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Throttle {
    #[error("the function is disabled (concurrency = 0)")]
    Disabled,
    #[error("the function is at its concurrency limit of {limit}")]
    Function { limit: u32 },
    #[error("the account is at its concurrency limit of {limit} ({reserved} of it reserved by functions)")]
    Account { limit: u32, reserved: u32 },
    #[error("the node is at its limit of {limit} instances")]
    Instances { limit: u32 },
}

impl Throttle {
    /// Lambda's reason code for the throttle, used as the record's error type.
    pub fn error_type(&self) -> &'static str {
        match self {
            Throttle::Disabled | Throttle::Function { .. } => "ReservedFunctionConcurrentInvocationLimitExceeded",
            Throttle::Account { .. } => "ConcurrentInvocationLimitExceeded",
            Throttle::Instances { .. } => "InstanceLimitExceeded",
        }
    }

    /// Which limit, in one word: `function`, `account` or `node`.
    pub fn limit_name(&self) -> &'static str {
        match self {
            Throttle::Disabled | Throttle::Function { .. } => "function",
            Throttle::Account { .. } => "account",
            Throttle::Instances { .. } => "node",
        }
    }
}

/// The account's reservations would exceed its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the functions' reserved concurrency would total {total}, above the account limit of {limit}; lower `concurrency` on some functions"
)]
pub struct ReservationError {
    pub total: u64,
    pub limit: u32,
}

/// One function's reservation and how much of it is in use, shared by all its versions.
#[derive(Debug)]
pub(crate) struct FunctionLimit {
    reserved: AtomicU32,
    in_flight: AtomicU32,
}

/// The account's limit and the function limits carved from it.
#[derive(Debug)]
pub(crate) struct Account {
    limit: u32,
    reserved_total: AtomicU32,
    unreserved_in_flight: AtomicU32,
    functions: std::sync::Mutex<HashMap<FunctionName, Arc<FunctionLimit>>>,
}

/// A held unit of concurrency; released on drop.
pub(crate) enum Permit {
    Reserved(Arc<FunctionLimit>),
    Unreserved(Arc<Account>),
}

impl Drop for Permit {
    fn drop(&mut self) {
        match self {
            Permit::Reserved(function) => function.in_flight.fetch_sub(1, Ordering::AcqRel),
            Permit::Unreserved(account) => account.unreserved_in_flight.fetch_sub(1, Ordering::AcqRel),
        };
    }
}

fn try_take(counter: &AtomicU32, limit: u32) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
}

impl Account {
    pub(crate) fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            reserved_total: AtomicU32::new(0),
            unreserved_in_flight: AtomicU32::new(0),
            functions: Default::default(),
        })
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes a unit of concurrency for a function, or says which limit is full.
    pub(crate) fn admit(self: &Arc<Self>, function: &Arc<FunctionLimit>) -> Result<Permit, Throttle> {
        match function.reserved.load(Ordering::Acquire) {
            0 => Err(Throttle::Disabled),
            UNRESERVED => {
                let reserved = self.reserved_total.load(Ordering::Acquire);
                if try_take(&self.unreserved_in_flight, self.limit.saturating_sub(reserved)) {
                    Ok(Permit::Unreserved(self.clone()))
                } else {
                    Err(Throttle::Account { limit: self.limit, reserved })
                }
            }
            limit => {
                if try_take(&function.in_flight, limit) {
                    Ok(Permit::Reserved(function.clone()))
                } else {
                    Err(Throttle::Function { limit })
                }
            }
        }
    }

    /// Checks that setting these reservations (and dropping those of `removed`) keeps
    /// the total within the account limit.
    pub(crate) fn check(
        &self,
        changes: &[(FunctionName, Option<u32>)],
        removed: &[FunctionName],
    ) -> Result<(), ReservationError> {
        let functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let mut total: HashMap<&FunctionName, u64> = functions
            .iter()
            .filter_map(|(name, f)| reserved_of(f).map(|r| (name, u64::from(r))))
            .filter(|(name, _)| !removed.contains(name))
            .collect();
        for (name, reservation) in changes {
            total.insert(name, reservation.map_or(0, u64::from));
        }
        let total = total.values().sum();
        if total > u64::from(self.limit) { Err(ReservationError { total, limit: self.limit }) } else { Ok(()) }
    }

    /// The shared limit of `function`, with its reservation set to `reservation`.
    pub(crate) fn set(&self, function: &FunctionName, reservation: Option<u32>) -> Arc<FunctionLimit> {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let limit = functions
            .entry(function.clone())
            .or_insert_with(|| {
                Arc::new(FunctionLimit { reserved: AtomicU32::new(UNRESERVED), in_flight: AtomicU32::new(0) })
            })
            .clone();
        let old = reserved_of(&limit).unwrap_or(0);
        let new = reservation.unwrap_or(0);
        limit.reserved.store(reservation.unwrap_or(UNRESERVED), Ordering::Release);
        if new >= old {
            self.reserved_total.fetch_add(new - old, Ordering::AcqRel);
        } else {
            self.reserved_total.fetch_sub(old - new, Ordering::AcqRel);
        }
        limit
    }

    /// Forgets a deleted function and returns its reservation to the pool.
    pub(crate) fn remove(&self, function: &FunctionName) {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(limit) = functions.remove(function) {
            let old = reserved_of(&limit).unwrap_or(0);
            self.reserved_total.fetch_sub(old, Ordering::AcqRel);
            // Invocations still running hold their permits; none are admitted any more.
            limit.reserved.store(0, Ordering::Release);
        }
    }

    pub(crate) fn reserved_total(&self) -> u32 {
        self.reserved_total.load(Ordering::Acquire)
    }
}

fn reserved_of(limit: &FunctionLimit) -> Option<u32> {
    match limit.reserved.load(Ordering::Acquire) {
        UNRESERVED => None,
        n => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> FunctionName {
        text.parse().unwrap()
    }

    #[test]
    fn a_reservation_caps_its_function_and_shrinks_the_shared_pool() {
        let account = Account::new(10);
        let reserved = account.set(&name("a"), Some(3));
        let shared = account.set(&name("b"), None);
        let held: Vec<_> = (0..3).map(|_| account.admit(&reserved).unwrap()).collect();
        assert_eq!(account.admit(&reserved).err(), Some(Throttle::Function { limit: 3 }));
        let others: Vec<_> = (0..7).map(|_| account.admit(&shared).unwrap()).collect();
        assert_eq!(account.admit(&shared).err(), Some(Throttle::Account { limit: 10, reserved: 3 }));
        drop(held);
        assert_eq!(account.admit(&shared).err(), Some(Throttle::Account { limit: 10, reserved: 3 }));
        assert!(account.admit(&reserved).is_ok());
        drop(others);
        assert!(account.admit(&shared).is_ok());
    }

    #[test]
    fn zero_disables_a_function() {
        let account = Account::new(10);
        let disabled = account.set(&name("a"), Some(0));
        assert_eq!(account.admit(&disabled).err(), Some(Throttle::Disabled));
    }

    #[test]
    fn reservations_may_not_exceed_the_account() {
        let account = Account::new(10);
        account.set(&name("a"), Some(6));
        assert!(account.check(&[(name("b"), Some(4))], &[]).is_ok());
        assert_eq!(account.check(&[(name("b"), Some(5))], &[]), Err(ReservationError { total: 11, limit: 10 }));
        assert!(account.check(&[(name("b"), Some(5))], &[name("a")]).is_ok());
        assert!(account.check(&[(name("a"), Some(10))], &[]).is_ok());
        account.set(&name("a"), Some(2));
        assert_eq!(account.reserved_total(), 2);
        account.remove(&name("a"));
        assert_eq!(account.reserved_total(), 0);
    }
}
