//! The scheduler's rules, without NATS: turns, weights, shares, quotas, the queue.
use super::*;
use crate::config::TenantOverride;

fn section(text: &str) -> TenantsSection {
    toml::from_str(text).unwrap()
}

fn later(ms: u64) -> Wait {
    Wait::Until(Instant::now() + Duration::from_millis(ms))
}

/// Starts a job of `tenant` that waits for its slot; the slot comes back on the channel.
fn waiter(
    scheduler: &Arc<Scheduler>,
    tenant: &'static str,
    started: tokio::sync::mpsc::UnboundedSender<(&'static str, Slot)>,
) -> tokio::task::JoinHandle<()> {
    let scheduler = scheduler.clone();
    tokio::spawn(async move {
        let stop = CancellationToken::new();
        let slot = scheduler
            .admit(Some(tenant), "a", Wait::InHand, &stop)
            .await
            .unwrap();
        let _ = started.send((tenant, slot));
    })
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_waiting_tenant_is_served_before_a_flood_that_came_first() {
    let scheduler = Scheduler::new(2, section("max_share = 1.0"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..10 {
        waiter(&scheduler, "noisy", tx.clone());
        settle().await;
    }
    waiter(&scheduler, "quiet", tx.clone());
    settle().await;
    // Two noisy jobs hold the slots; eight noisy jobs and the quiet one wait.
    let mut held = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
    assert!(held.iter().all(|(t, _)| *t == "noisy"));
    assert_eq!(scheduler.queued(), 9);
    // The first slot freed goes to the quiet tenant, in its turn.
    held.pop();
    settle().await;
    assert_eq!(rx.recv().await.unwrap().0, "quiet");
    held.pop();
    settle().await;
    assert_eq!(rx.recv().await.unwrap().0, "noisy");
}

#[tokio::test]
async fn weights_give_slots_in_proportion() {
    let mut config = section("max_share = 1.0");
    config.overrides.insert(
        "heavy".into(),
        TenantOverride {
            weight: Some(3),
            ..TenantOverride::default()
        },
    );
    let scheduler = Scheduler::new(1, config);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let blocker = scheduler.reserve().unwrap();
    for _ in 0..8 {
        waiter(&scheduler, "heavy", tx.clone());
        waiter(&scheduler, "light", tx.clone());
    }
    settle().await;
    drop(blocker);
    let mut order = vec![];
    for _ in 0..8 {
        let (tenant, slot) = rx.recv().await.unwrap();
        order.push(tenant);
        drop(slot);
        settle().await;
    }
    let heavy = order.iter().filter(|t| **t == "heavy").count();
    assert_eq!(heavy, 6, "3 heavy to 1 light: {order:?}");
}

#[tokio::test]
async fn one_tenant_leaves_headroom_and_a_lone_tenant_still_runs() {
    let scheduler = Scheduler::new(16, TenantsSection::default());
    let stop = CancellationToken::new();
    let mut slots = vec![];
    for _ in 0..14 {
        slots.push(
            scheduler
                .admit(Some("bulk"), "a", later(1000), &stop)
                .await
                .unwrap(),
        );
    }
    // The fifteenth waits: two slots are kept for other tenants.
    let refused = scheduler.admit(Some("bulk"), "a", later(30), &stop).await;
    let Err(Refused::OverCapacity { message, .. }) = refused else {
        panic!("{:?}", refused.is_ok());
    };
    assert!(
        message.contains("tenant bulk has 14 jobs running"),
        "{message}"
    );
    // Another tenant starts at once.
    let quick = scheduler
        .admit(Some("live"), "a", later(1), &stop)
        .await
        .unwrap();
    assert!(quick.waited < Duration::from_millis(50));
    assert_eq!(scheduler.free(), 1);
}

#[tokio::test]
async fn quotas_bound_a_tenant_and_an_action() {
    let config = section(
        "max_share = 1.0\n[overrides.acme]\nmax_in_flight = 2\n[actions.\"acme.slow\"]\nmax_in_flight = 1\n",
    );
    let scheduler = Scheduler::new(8, config);
    let stop = CancellationToken::new();
    let slow = scheduler
        .admit(Some("acme"), "slow", later(10), &stop)
        .await
        .unwrap();
    let refused = scheduler
        .admit(Some("acme"), "slow", later(20), &stop)
        .await;
    let Err(Refused::OverCapacity { message, .. }) = refused else {
        panic!("the action's quota");
    };
    assert!(message.contains("action slow of tenant acme"), "{message}");
    let other = scheduler
        .admit(Some("acme"), "fast", later(10), &stop)
        .await
        .unwrap();
    assert!(
        scheduler
            .admit(Some("acme"), "fast", later(20), &stop)
            .await
            .is_err()
    );
    // Other tenants are not held back by acme's quota.
    let free = scheduler.admit(Some("zen"), "fast", later(10), &stop).await;
    assert!(free.is_ok());
    drop((slow, other));
    assert!(
        scheduler
            .admit(Some("acme"), "slow", later(10), &stop)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_rate_quota_spaces_starts_and_refuses_past_the_deadline() {
    let scheduler = Scheduler::new(8, section("jobs_per_second = 2.0"));
    let stop = CancellationToken::new();
    let started = Instant::now();
    // A burst of one second's worth starts at once, the next waits its turn.
    drop(
        scheduler
            .admit(Some("t"), "a", later(2000), &stop)
            .await
            .unwrap(),
    );
    drop(
        scheduler
            .admit(Some("t"), "a", later(2000), &stop)
            .await
            .unwrap(),
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    drop(
        scheduler
            .admit(Some("t"), "a", later(2000), &stop)
            .await
            .unwrap(),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let refused = scheduler.admit(Some("t"), "a", later(10), &stop).await;
    let Err(Refused::OverCapacity {
        message,
        retry_after,
    }) = refused
    else {
        panic!("over the rate");
    };
    assert!(message.contains("may start 2 jobs per second"), "{message}");
    assert!(retry_after > Duration::ZERO);
    // A durable job in hand had its tenant's start taken when it was pulled: it is not
    // held back by the tenant's rate again.
    let in_hand = tokio::time::timeout(
        Duration::from_millis(100),
        scheduler.admit(Some("t"), "a", Wait::InHand, &stop),
    );
    assert!(in_hand.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_durable_job_in_hand_waits_out_its_actions_rate() {
    let scheduler = Scheduler::new(4, section("[actions.\"t.a\"]\njobs_per_second = 4.0\n"));
    let stop = CancellationToken::new();
    let started = Instant::now();
    // A burst of one second's worth (4) may start at once, then one each 250 ms.
    for _ in 0..5 {
        let slot = scheduler.admit(Some("t"), "a", Wait::InHand, &stop).await;
        drop(slot.unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_a_given_up_wait_leaves_no_trace() {
    let scheduler = Scheduler::new(1, section("max_queued = 1"));
    let stop = CancellationToken::new();
    let held = scheduler
        .admit(None, "a", Wait::InHand, &stop)
        .await
        .unwrap();
    let waiting = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move {
            let stop = CancellationToken::new();
            scheduler
                .admit(Some("b"), "a", Wait::InHand, &stop)
                .await
                .map(drop)
        })
    };
    settle().await;
    let refused = scheduler.admit(Some("c"), "a", later(1000), &stop).await;
    let Err(Refused::OverCapacity { message, .. }) = refused else {
        panic!("a full queue");
    };
    assert!(message.contains("max_queued"), "{message}");
    waiting.abort();
    settle().await;
    assert_eq!(scheduler.queued(), 0);
    drop(held);
    assert_eq!(scheduler.free(), 1);
}

#[tokio::test]
async fn idle_tenants_under_a_rate_quota_are_forgotten() {
    let scheduler = Scheduler::new(4, section("jobs_per_second = 1000.0"));
    let stop = CancellationToken::new();
    for i in 0..3 * SWEEP_AT {
        let tenant = format!("t{i}");
        drop(
            scheduler
                .admit(Some(&tenant), "a", later(1000), &stop)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(
        scheduler
            .admit(Some("last"), "a", later(1000), &stop)
            .await
            .unwrap(),
    );
    assert!(scheduler.lock().tenants.len() <= SWEEP_AT + 1);
}

#[tokio::test]
async fn reserved_slots_are_claimed_or_given_back_and_stop_ends_a_wait() {
    let scheduler = Scheduler::new(1, TenantsSection::default());
    let reserved = scheduler.reserve().unwrap();
    assert!(scheduler.reserve().is_none());
    drop(reserved);
    let slot = scheduler.claim(scheduler.reserve().unwrap(), Some("x"), "a");
    assert_eq!(scheduler.free(), 0);
    let stop = CancellationToken::new();
    stop.cancel();
    let stopped = scheduler.admit(Some("y"), "a", Wait::InHand, &stop).await;
    assert_eq!(stopped.err(), Some(Refused::Stopping));
    drop(slot);
    assert_eq!(scheduler.free(), 1);
}

fn lanes<'a>(tenants: &[(&'a str, u32)]) -> Vec<LaneDemand<'a>> {
    tenants
        .iter()
        .map(|&(tenant, in_hand)| LaneDemand {
            tenant: Some(tenant),
            in_hand,
        })
        .collect()
}

#[test]
fn pulls_share_the_free_slots_among_lanes_in_turn() {
    let scheduler = Scheduler::new(16, TenantsSection::default());
    // A lane with a backlog in hand and a new one: the new one is served first, and the
    // rest evenly.
    let plan = scheduler.plan_pulls(&lanes(&[("bulk", 10), ("live", 0)]), 4, 0);
    assert_eq!(plan.pulls, vec![0, 4]);
    let plan = scheduler.plan_pulls(&lanes(&[("a", 0), ("b", 0)]), 6, 0);
    assert_eq!(plan.pulls, vec![3, 3]);
    // Odd slots: `turn` decides who gets the extra one.
    assert_eq!(
        scheduler
            .plan_pulls(&lanes(&[("a", 0), ("b", 0)]), 1, 0)
            .pulls,
        vec![1, 0]
    );
    assert_eq!(
        scheduler
            .plan_pulls(&lanes(&[("a", 0), ("b", 0)]), 1, 1)
            .pulls,
        vec![0, 1]
    );
    // A lone lane takes its share (14 of 16), not the headroom.
    let plan = scheduler.plan_pulls(&lanes(&[("alone", 0)]), 16, 0);
    assert_eq!(plan.pulls, vec![14]);
    assert_eq!(plan.rate_wait, None);
    assert!(scheduler.plan_pulls(&[], 16, 0).pulls.is_empty());
}

#[test]
fn pulls_follow_weights_and_quotas() {
    let config = section("[overrides.gold]\nweight = 3\n[overrides.capped]\nmax_in_flight = 2\n");
    let scheduler = Scheduler::new(16, config);
    let plan = scheduler.plan_pulls(&lanes(&[("gold", 0), ("plain", 0)]), 8, 0);
    assert_eq!(plan.pulls, vec![6, 2]);
    let plan = scheduler.plan_pulls(&lanes(&[("capped", 1), ("plain", 0)]), 8, 0);
    assert_eq!(plan.pulls, vec![1, 7]);
    // At its quota, a lane gets nothing however many slots are free.
    let plan = scheduler.plan_pulls(&lanes(&[("capped", 2)]), 16, 0);
    assert_eq!(plan.pulls, vec![0]);
    assert_eq!(plan.rate_wait, None);
}

#[test]
fn pulls_take_a_rate_quota_and_give_back_what_they_did_not_find() {
    let scheduler = Scheduler::new(16, section("[overrides.slow]\njobs_per_second = 2.0\n"));
    // A burst of one second's worth (2), then nothing until the next start is due.
    let plan = scheduler.plan_pulls(&lanes(&[("slow", 0)]), 8, 0);
    assert_eq!(plan.pulls, vec![2]);
    let plan = scheduler.plan_pulls(&lanes(&[("slow", 0)]), 8, 0);
    assert_eq!(plan.pulls, vec![0]);
    let wait = plan.rate_wait.expect("held back by its rate");
    assert!(
        wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    // Other lanes are not held back meanwhile.
    let plan = scheduler.plan_pulls(&lanes(&[("slow", 0), ("free", 0)]), 4, 0);
    assert_eq!(plan.pulls, vec![0, 4]);
    assert_eq!(plan.rate_wait, None);
    // The pull found one job of the two: one start comes back.
    scheduler.refund_starts(Some("slow"), 1);
    let plan = scheduler.plan_pulls(&lanes(&[("slow", 0)]), 8, 0);
    assert_eq!(plan.pulls, vec![1]);
}

#[test]
fn pulls_count_a_tenants_running_request_reply_jobs() {
    let scheduler = Scheduler::new(4, section("[overrides.t]\nmax_in_flight = 2\n"));
    let reserved = scheduler.reserve().unwrap();
    let _slot = scheduler.claim(reserved, Some("t"), "a");
    let plan = scheduler.plan_pulls(&lanes(&[("t", 0)]), 3, 0);
    assert_eq!(plan.pulls, vec![1]);
}
