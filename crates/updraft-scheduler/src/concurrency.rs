//! Concurrency accounting, as Lambda does it: a function with a reservation
//! (`concurrency = N`) may run N at once and those N are carved out of the account's
//! pool; every other function shares what is left. Admission is one atomic
//! compare-and-swap, so a limit holds exactly however many callers race for it.
//!
//! In a cluster each limit (a reserved function's, or the shared pool's: a [`Scope`])
//! is split among the nodes: a node admits up to its *share*, which a [`Lender`] (the
//! cluster's ledger) grows on demand and which the node gives back when idle, so the
//! shares never add up to more than the limit. Alone, a node's share is the whole limit.

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

/// A limit that nodes of a cluster share: a reserved function's, or the pool of the
/// account that unreserved functions share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Function(FunctionName),
    Pool,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Function(name) => write!(f, "function:{name}"),
            Scope::Pool => f.write_str("pool"),
        }
    }
}

/// Where a node of a cluster gets more of a limit it shares with the others.
pub trait Lender: Send + Sync {
    /// Asks for up to `want` more permits of `scope` (whose cluster-wide limit is
    /// `limit`); returns how many were granted (this node's share grows by them).
    fn borrow<'a>(&'a self, scope: &'a Scope, limit: u32, want: u32) -> futures::future::BoxFuture<'a, u32>;
}

/// What a node holds of one scope, for the round that renews and returns shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStats {
    pub scope: Scope,
    /// The scope's limit for the whole cluster.
    pub limit: u32,
    /// What this node may admit.
    pub share: u32,
    pub in_flight: u32,
    /// The most in flight at once since the last round.
    pub peak: u32,
    /// Whether an admission found the share full since the last round.
    pub short: bool,
}

/// This node's share of one scope: how much it may admit and how much it used.
#[derive(Debug)]
struct Share {
    /// `UNLIMITED` outside a cluster.
    allowed: AtomicU32,
    peak: AtomicU32,
    short: std::sync::atomic::AtomicBool,
}

const UNLIMITED: u32 = u32::MAX;

impl Share {
    fn new(allowed: u32) -> Self {
        Self { allowed: AtomicU32::new(allowed), peak: AtomicU32::new(0), short: Default::default() }
    }
}

/// One function's reservation and how much of it is in use, shared by all its versions.
#[derive(Debug)]
pub(crate) struct FunctionLimit {
    name: FunctionName,
    reserved: AtomicU32,
    in_flight: AtomicU32,
    share: Share,
}

/// The account's limit and the function limits carved from it.
#[derive(Debug)]
pub(crate) struct Account {
    limit: u32,
    reserved_total: AtomicU32,
    unreserved_in_flight: AtomicU32,
    pool_share: Share,
    /// Whether shares start empty (a cluster: a [`Lender`] fills them) or whole.
    clustered: std::sync::atomic::AtomicBool,
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

/// Takes one of `limit` within this node's `share`; notes the peak, or that the share
/// (not the limit) was what refused.
fn try_take_shared(counter: &AtomicU32, limit: u32, share: &Share) -> bool {
    let allowed = share.allowed.load(Ordering::Acquire);
    if allowed == UNLIMITED {
        // Outside a cluster nobody reads the peak: one compare-and-swap, as before.
        return counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok();
    }
    match counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit.min(allowed)).then_some(n + 1)) {
        Ok(before) => {
            share.peak.fetch_max(before + 1, Ordering::AcqRel);
            true
        }
        Err(now) => {
            if now < limit {
                share.short.store(true, Ordering::Release);
            }
            false
        }
    }
}

impl Account {
    pub(crate) fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            reserved_total: AtomicU32::new(0),
            unreserved_in_flight: AtomicU32::new(0),
            pool_share: Share::new(UNLIMITED),
            clustered: Default::default(),
            functions: Default::default(),
        })
    }

    /// From now on every share starts empty and is filled by a lender.
    pub(crate) fn cluster(&self) {
        self.clustered.store(true, Ordering::Release);
        self.pool_share.allowed.store(0, Ordering::Release);
        for function in self.functions.lock().unwrap_or_else(|p| p.into_inner()).values() {
            function.share.allowed.store(0, Ordering::Release);
        }
    }

    fn share(&self, scope: &Scope) -> Option<(Arc<FunctionLimit>, u32)> {
        match scope {
            Scope::Function(name) => {
                let function = self.functions.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()?;
                let limit = reserved_of(&function)?;
                Some((function, limit))
            }
            Scope::Pool => None,
        }
    }

    /// The scope whose share (not its limit) refused `function` now, if any, with the
    /// scope's limit: what to ask a lender for.
    pub(crate) fn short_scope(&self, function: &FunctionLimit) -> Option<(Scope, u32)> {
        match function.reserved.load(Ordering::Acquire) {
            0 => None,
            UNRESERVED => {
                let limit = self.limit.saturating_sub(self.reserved_total.load(Ordering::Acquire));
                let allowed = self.pool_share.allowed.load(Ordering::Acquire);
                let in_flight = self.unreserved_in_flight.load(Ordering::Acquire);
                (in_flight >= allowed && in_flight < limit).then_some((Scope::Pool, limit))
            }
            limit => {
                let allowed = function.share.allowed.load(Ordering::Acquire);
                let in_flight = function.in_flight.load(Ordering::Acquire);
                (in_flight >= allowed && in_flight < limit).then(|| (Scope::Function(function.name.clone()), limit))
            }
        }
    }

    /// Adds `permits` to this node's share of `scope` (a lender granted them).
    pub(crate) fn grow_share(&self, scope: &Scope, permits: u32) {
        let share = match scope {
            Scope::Pool => &self.pool_share,
            Scope::Function(_) => match self.share(scope) {
                Some((function, _)) => return add(&function.share.allowed, permits),
                None => return,
            },
        };
        add(&share.allowed, permits);
    }

    /// Sets this node's share of `scope` to `permits`; returns what it must keep
    /// claiming: the share or, if more run now, what runs.
    pub(crate) fn set_share(&self, scope: &Scope, permits: u32) -> u32 {
        match scope {
            Scope::Pool => {
                self.pool_share.allowed.store(permits, Ordering::Release);
                permits.max(self.unreserved_in_flight.load(Ordering::Acquire))
            }
            Scope::Function(_) => match self.share(scope) {
                Some((function, _)) => {
                    function.share.allowed.store(permits, Ordering::Release);
                    permits.max(function.in_flight.load(Ordering::Acquire))
                }
                None => 0,
            },
        }
    }

    /// Every scope this node holds or may need, with its use since the last call.
    pub(crate) fn shares(&self) -> Vec<ShareStats> {
        let stats = |scope: Scope, limit: u32, share: &Share, in_flight: &AtomicU32| {
            let in_flight = in_flight.load(Ordering::Acquire);
            ShareStats {
                scope,
                limit,
                share: share.allowed.load(Ordering::Acquire),
                in_flight,
                peak: share.peak.swap(in_flight, Ordering::AcqRel),
                short: share.short.swap(false, Ordering::AcqRel),
            }
        };
        let mut all = vec![stats(
            Scope::Pool,
            self.limit.saturating_sub(self.reserved_total.load(Ordering::Acquire)),
            &self.pool_share,
            &self.unreserved_in_flight,
        )];
        for function in self.functions.lock().unwrap_or_else(|p| p.into_inner()).values() {
            if let Some(limit) = reserved_of(function).filter(|limit| *limit > 0) {
                all.push(stats(Scope::Function(function.name.clone()), limit, &function.share, &function.in_flight));
            }
        }
        all
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
                let limit = self.limit.saturating_sub(reserved);
                if try_take_shared(&self.unreserved_in_flight, limit, &self.pool_share) {
                    Ok(Permit::Unreserved(self.clone()))
                } else {
                    Err(Throttle::Account { limit: self.limit, reserved })
                }
            }
            limit => {
                if try_take_shared(&function.in_flight, limit, &function.share) {
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
                let share = if self.clustered.load(Ordering::Acquire) { 0 } else { UNLIMITED };
                Arc::new(FunctionLimit {
                    name: function.clone(),
                    reserved: AtomicU32::new(UNRESERVED),
                    in_flight: AtomicU32::new(0),
                    share: Share::new(share),
                })
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

fn add(counter: &AtomicU32, permits: u32) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(permits)));
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
    fn in_a_cluster_a_node_admits_only_its_share_and_reports_its_use() {
        let account = Account::new(10);
        let reserved = account.set(&name("a"), Some(4));
        account.cluster();
        let shared = account.set(&name("b"), None);
        // Empty shares: the limits are not reached, so a lender is asked.
        assert_eq!(account.admit(&reserved).err(), Some(Throttle::Function { limit: 4 }));
        assert_eq!(account.short_scope(&reserved), Some((Scope::Function(name("a")), 4)));
        assert_eq!(account.short_scope(&shared), Some((Scope::Pool, 6)));

        account.grow_share(&Scope::Function(name("a")), 2);
        let held: Vec<_> = (0..2).map(|_| account.admit(&reserved).unwrap()).collect();
        assert!(account.admit(&reserved).is_err());
        let stats = account.shares();
        let a = stats.iter().find(|s| s.scope == Scope::Function(name("a"))).unwrap();
        assert_eq!((a.limit, a.share, a.in_flight, a.peak, a.short), (4, 2, 2, 2, true));
        // The next round starts from what runs now.
        let a = account.shares().into_iter().find(|s| s.scope == Scope::Function(name("a"))).unwrap();
        assert_eq!((a.peak, a.short), (2, false));

        // Lowering the share below what runs keeps claiming what runs until it ends.
        assert_eq!(account.set_share(&Scope::Function(name("a")), 1), 2);
        drop(held);
        assert_eq!(account.set_share(&Scope::Function(name("a")), 1), 1);
        let _one = account.admit(&reserved).unwrap();
        assert!(account.admit(&reserved).is_err());

        // A full limit is a limit, not a share to ask for more of.
        account.grow_share(&Scope::Function(name("a")), 10);
        let _rest: Vec<_> = (0..3).map(|_| account.admit(&reserved).unwrap()).collect();
        assert_eq!(account.short_scope(&reserved), None);
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
