//! The ticker of `schedule` triggers. Each schedule's next tick is stored; when it is
//! due, the ticker moves it on and stores the tick's event in one transaction, guarded
//! by the tick it read, so each tick becomes exactly one event: a restart, or a second
//! node looking at the same moment, finds the tick already moved and does nothing.
//! Ticks missed while no server ran follow the trigger's `catch_up` policy.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use updraft_model::{CatchUp, EventSource, FunctionName, ScheduleTrigger, Trigger, now_millis};
use updraft_runtime::new_trace_id;
use updraft_store::{AsyncEvent, EventState, Store, StoreError};

use crate::layer::EventLayer;
use crate::queue::QueueError;

/// How often schedules are looked at, at most (deploys are picked up this fast too).
const POLL: Duration = Duration::from_secs(1);
/// A tick seen this late was missed (no server was running), not merely looked at a
/// little after it fell due; `catch_up` decides what happens to it.
const GRACE: i64 = 60_000;
/// The most ticks one look fires for a schedule with `catch_up = "all"`; the rest
/// follow on the next looks.
const MAX_CATCH_UP: usize = 1_000;
/// The most ticks walked to find the latest missed one (a per-second schedule after a
/// long outage); past it, the schedule resumes from now.
const MAX_WALK: usize = 100_000;

/// Starts the ticker of `layer`'s schedules until the layer stops.
pub(crate) fn start(layer: &Arc<EventLayer>) {
    tokio::spawn(run(Arc::downgrade(layer), layer.store().clone(), layer.stopping()));
}

async fn run(layer: Weak<EventLayer>, store: Store, mut stopped: watch::Receiver<bool>) {
    // The next tick of each schedule as this node last saw it: the store is read only
    // when one falls due.
    let mut known: HashMap<String, i64> = HashMap::new();
    let mut live_keys: Option<HashSet<String>> = None;
    loop {
        let Some(layer) = layer.upgrade() else { return };
        let Some(host) = layer.host() else { return };
        let now = now_millis();
        let mut wake_at = now + POLL.as_millis() as i64;
        let live = host.functions();
        drop(host);
        let keys: HashSet<String> = live
            .iter()
            .flat_map(|(function, config)| {
                config.triggers.iter().filter_map(move |trigger| match trigger {
                    Trigger::Schedule(schedule) => Some(schedule_key(function, schedule)),
                    _ => None,
                })
            })
            .collect();
        if live_keys.as_ref() != Some(&keys) {
            // A schedule that is no longer deployed is forgotten, so that adding it back
            // later starts it afresh instead of firing the ticks of its absence.
            if let Err(error) = forget_removed(&store, &keys).await {
                tracing::error!(%error, "cannot forget removed schedules");
            }
            known.retain(|key, _| keys.contains(key));
            live_keys = Some(keys);
        }
        for (function, config) in &live {
            for trigger in &config.triggers {
                let Trigger::Schedule(schedule) = trigger else { continue };
                let key = schedule_key(function, schedule);
                match look(&layer, &store, function, schedule, &key, known.get(&key).copied(), now).await {
                    Ok(next) => {
                        known.insert(key, next);
                        wake_at = wake_at.min(next);
                    }
                    Err(error) => {
                        known.remove(&key);
                        tracing::error!(%function, schedule = %schedule.schedule, %error, "cannot advance a schedule");
                    }
                }
            }
        }
        drop(live);
        drop(layer);
        let sleep = Duration::from_millis((wake_at - now_millis()).clamp(1, POLL.as_millis() as i64) as u64);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn forget_removed(store: &Store, live: &HashSet<String>) -> Result<(), StoreError> {
    for key in store.schedule_keys().await? {
        if !live.contains(&key) {
            store.schedule_forget(&key).await?;
        }
    }
    Ok(())
}

/// Fires what is due of one schedule; returns its next tick.
async fn look(
    layer: &EventLayer,
    store: &Store,
    function: &FunctionName,
    schedule: &ScheduleTrigger,
    key: &str,
    known: Option<i64>,
    now: i64,
) -> Result<i64, QueueError> {
    if let Some(next) = known
        && next > now
    {
        return Ok(next);
    }
    let never = i64::MAX;
    let next_after = |time: i64| schedule.schedule.next_after(time, &schedule.timezone).unwrap_or(never);
    let Some(due) = store.schedule_next_tick(key).await? else {
        // A new schedule starts from now: nothing before its deploy fires.
        let first = next_after(now);
        store.schedule_advance(key, function, None, first, &[]).await?;
        return Ok(store.schedule_next_tick(key).await?.unwrap_or(first));
    };
    if due > now {
        return Ok(due);
    }
    // Every tick from `due` up to now, within bounds.
    let mut ticks = vec![due];
    let mut next = next_after(due);
    while next <= now && ticks.len() < MAX_WALK {
        ticks.push(next);
        next = next_after(next);
    }
    if next <= now {
        // Too many to walk: resume from now.
        next = next_after(now);
    }
    let missed = ticks.len();
    let fire: Vec<i64> = match schedule.catch_up {
        CatchUp::All => {
            if ticks.len() > MAX_CATCH_UP {
                next = ticks[MAX_CATCH_UP];
                ticks.truncate(MAX_CATCH_UP);
            }
            ticks
        }
        CatchUp::Latest => ticks.last().copied().into_iter().collect(),
        CatchUp::Skip => ticks.last().copied().filter(|tick| now - tick <= GRACE).into_iter().collect(),
    };
    let events: Vec<AsyncEvent> = fire.iter().map(|tick| tick_event(function, schedule, key, *tick)).collect();
    let fired = !events.is_empty();
    let received = EventLayer::received(&events);
    if missed > fire.len() && schedule.catch_up != CatchUp::All {
        tracing::info!(%function, schedule = %schedule.schedule, missed = missed - fire.len(), catch_up = schedule.catch_up.as_str(), "schedule ticks were missed");
    }
    if layer.event_queue().advance_schedule(key, function, Some(due), next, events).await? {
        if fired {
            layer.count_received(received);
            layer.wake_dispatcher();
        }
        Ok(next)
    } else {
        // Another node (or an earlier run) moved it first.
        Ok(store.schedule_next_tick(key).await?.unwrap_or(next))
    }
}

/// A schedule's identity: its function, expression and time zone. Redeploying the
/// same schedule keeps its ticks; changing it starts a new one.
fn schedule_key(function: &FunctionName, schedule: &ScheduleTrigger) -> String {
    let digest = Sha256::digest(format!("{}\n{}", schedule.schedule, schedule.timezone.name()));
    format!("{function}#{}", hex::encode(&digest[..8]))
}

/// The event of one tick, its id derived from the schedule and the tick so that the
/// same tick can never be stored twice.
fn tick_event(function: &FunctionName, schedule: &ScheduleTrigger, key: &str, tick: i64) -> AsyncEvent {
    let digest = Sha256::digest(format!("{key}@{tick}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let now = now_millis();
    AsyncEvent {
        id: uuid::Uuid::new_v8(bytes).to_string(),
        function: function.clone(),
        payload: Vec::new(),
        trace_id: new_trace_id(),
        parent_span_id: None,
        lineage: Default::default(),
        qualifier: None,
        enqueued_at: now,
        attempts: 0,
        next_attempt_at: now,
        state: EventState::Queued,
        last_error: None,
        source: EventSource::Schedule { schedule: schedule.schedule.to_string(), tick_at: tick },
    }
}
