//! The cron scheduler on real shards: fires on time and never early (manual clock), month ends
//! and leap days, no replay of missed times, manual runs, bounded overlap, start-up validation,
//! and one real-time run that fires within 10 s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow_config::cron::days_from_civil;
use burrow_runtime::clock::{Clock, LocalBoxFuture, ManualClock, SystemClock};
use burrow_runtime::shard::Shards;
use burrow_services::cron::{
    Error, Options, ScheduledController, ScheduledHandler, Scheduler, Trigger,
};

const MINUTE_MS: i64 = 60_000;

/// Epoch milliseconds of a UTC date and time.
fn utc(year: i64, month: u8, day: u8, hour: i64, minute: i64, second: i64) -> i64 {
    ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * MINUTE_MS + second * 1000
}

/// (cron, scheduled time, clock time when the handler ran) for every run.
type Runs = Arc<Mutex<Vec<(String, i64, i64)>>>;

fn recording_handler(
    clock: Arc<dyn Clock>,
    runs: Runs,
    failing_cron: Option<&'static str>,
) -> Arc<dyn ScheduledHandler> {
    Arc::new(move |controller: ScheduledController| {
        let now = clock.now_ms();
        runs.lock()
            .unwrap()
            .push((controller.cron.clone(), controller.scheduled_time_ms, now));
        let fail = failing_cron == Some(controller.cron.as_str());
        async move {
            if fail {
                Err("handler failed on purpose".to_string())
            } else {
                Ok(())
            }
        }
    })
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_fire_at_their_times_never_before_and_skip_missed_ones() {
    let shards = Shards::start(2).unwrap();
    // 2024 is a leap year: "L" is 29 February.
    let clock = ManualClock::new(utc(2024, 2, 28, 23, 58, 30));
    let runs: Runs = Arc::default();
    let handler = recording_handler(Arc::new(clock.clone()), runs.clone(), Some("0 0 * * *"));
    let triggers =
        Trigger::parse_all(&["* * * * *", "0 0 * * *", "0 0 L * *", "30 9 * * MON#1"]).unwrap();
    let scheduler = Scheduler::start(
        triggers,
        handler,
        shards.clone(),
        Arc::new(clock.clone()),
        Options::default(),
    )
    .unwrap();
    let next: Vec<Option<i64>> = scheduler.stats().iter().map(|s| s.next_ms).collect();
    assert_eq!(
        next,
        vec![
            Some(utc(2024, 2, 28, 23, 59, 0)),
            Some(utc(2024, 2, 29, 0, 0, 0)),
            Some(utc(2024, 2, 29, 0, 0, 0)),
            Some(utc(2024, 3, 4, 9, 30, 0)),
        ]
    );
    wait_for(|| clock.sleepers() > 0).await;

    // One millisecond before the first time: nothing runs.
    clock.advance(Duration::from_millis(29_999));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(runs.lock().unwrap().is_empty(), "fired early");
    clock.advance(Duration::from_millis(1));
    wait_for(|| runs.lock().unwrap().len() == 1).await;
    assert_eq!(
        runs.lock().unwrap()[0],
        (
            "* * * * *".to_string(),
            utc(2024, 2, 28, 23, 59, 0),
            utc(2024, 2, 28, 23, 59, 0)
        )
    );

    // Midnight of the leap day: every minute, daily and last-day-of-month all fire.
    clock.advance(Duration::from_secs(60));
    wait_for(|| runs.lock().unwrap().len() == 4).await;
    let mut midnight: Vec<(String, i64)> = runs.lock().unwrap()[1..]
        .iter()
        .map(|(cron, at, _)| (cron.clone(), *at))
        .collect();
    midnight.sort();
    let leap_midnight = utc(2024, 2, 29, 0, 0, 0);
    assert_eq!(
        midnight,
        vec![
            ("* * * * *".to_string(), leap_midnight),
            ("0 0 * * *".to_string(), leap_midnight),
            ("0 0 L * *".to_string(), leap_midnight),
        ]
    );

    // The clock jumps 10 minutes (the process was stopped): one run, for the latest time.
    clock.advance(Duration::from_secs(600));
    wait_for(|| runs.lock().unwrap().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runs.lock().unwrap().len(), 5, "missed times were replayed");
    assert_eq!(runs.lock().unwrap()[4].1, utc(2024, 2, 29, 0, 10, 0));

    // Never before its time, in any run.
    for (cron, scheduled, ran) in runs.lock().unwrap().iter() {
        assert!(ran >= scheduled, "{cron} ran at {ran} before {scheduled}");
    }
    let stats = scheduler.stats();
    assert_eq!(stats[0].fired, 3);
    assert_eq!(stats[0].next_ms, Some(utc(2024, 2, 29, 0, 11, 0)));
    wait_for(|| scheduler.stats()[1].failed == 1).await;
    assert_eq!(scheduler.stats()[2].failed, 0);
    assert_eq!(scheduler.stats()[3].fired, 0);

    // A manual run (the local trigger endpoints) takes any cron string and waits for the handler.
    scheduler
        .run_now(ScheduledController {
            cron: "manual".into(),
            scheduled_time_ms: 42,
        })
        .await
        .unwrap();
    assert_eq!(runs.lock().unwrap().last().unwrap().0, "manual");
    let failed = scheduler
        .run_now(ScheduledController {
            cron: "0 0 * * *".into(),
            scheduled_time_ms: 42,
        })
        .await;
    assert_eq!(failed, Err("handler failed on purpose".to_string()));

    // After stop nothing fires, however far the clock goes.
    scheduler.stop();
    let before = runs.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(50)).await;
    clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runs.lock().unwrap().len(), before);
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handlers_do_not_pile_up() {
    let shards = Shards::start(2).unwrap();
    let clock = ManualClock::new(utc(2025, 1, 1, 0, 0, 0));
    let started = Arc::new(Mutex::new(0usize));
    let handler: Arc<dyn ScheduledHandler> = Arc::new({
        let started = started.clone();
        move |_controller: ScheduledController| {
            *started.lock().unwrap() += 1;
            std::future::pending::<Result<(), String>>()
        }
    });
    let scheduler = Scheduler::start(
        Trigger::parse_all(&["* * * * *"]).unwrap(),
        handler,
        shards.clone(),
        Arc::new(clock.clone()),
        Options {
            max_running_per_trigger: 2,
        },
    )
    .unwrap();
    for minute in 1..=4u64 {
        wait_for(|| clock.sleepers() > 0).await;
        clock.advance(Duration::from_secs(60));
        wait_for(|| {
            let stats = &scheduler.stats()[0];
            stats.fired + stats.skipped == minute
        })
        .await;
    }
    // A fired handler starts on its shard a moment after the scheduler counts it.
    wait_for(|| *started.lock().unwrap() >= 2 && scheduler.stats()[0].running >= 2).await;
    let stats = scheduler.stats()[0].clone();
    assert_eq!((stats.fired, stats.skipped, stats.running), (2, 2, 2));
    assert_eq!(*started.lock().unwrap(), 2);
    scheduler.stop();
    shards.shutdown(Duration::from_millis(100));
}

#[test]
fn invalid_and_duplicate_expressions_are_refused_with_a_clear_error() {
    let error = Trigger::parse_all(&["*/5 * * * *", "0 0 * * 0"]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::InvalidCron { .. }));
    assert!(
        message.starts_with("triggers.crons: \"0 0 * * 0\" is not a valid cron expression: "),
        "{message}"
    );
    assert!(message.contains("day-of-week"), "{message}");
    let error = Trigger::parse_all(&["* * * *"]).unwrap_err();
    assert!(error.to_string().contains("found 4 fields"), "{error}");
    let error = Trigger::parse_all(&["0 0 * * MON", "0 0 * * 2"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "triggers.crons: \"0 0 * * 2\" is the same schedule as \"0 0 * * MON\" (each schedule once)"
    );
    // Names, L, W and # are all accepted.
    Trigger::parse_all(&[
        "0 12 LW * *",
        "15 10 15W * *",
        "0 0 * JAN-MAR FRI#3",
        "0 0 * * 6L",
    ])
    .unwrap();
}

/// The system clock moved by a fixed offset: real time passes, but the test chooses where in the
/// minute it starts.
struct OffsetClock {
    offset_ms: i64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms
    }

    fn sleep_until(&self, at_ms: i64) -> LocalBoxFuture<'static, ()> {
        SystemClock.sleep_until(at_ms - self.offset_ms)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_fires_in_real_time_within_ten_seconds() {
    let shards = Shards::start(2).unwrap();
    // Start two seconds before a minute boundary of the scheduler's clock.
    let real = SystemClock.now_ms();
    let boundary = (real / MINUTE_MS + 1) * MINUTE_MS;
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock {
        offset_ms: boundary - 2_000 - real,
    });
    let runs: Runs = Arc::default();
    let started = Instant::now();
    let scheduler = Scheduler::start(
        Trigger::parse_all(&["* * * * *"]).unwrap(),
        recording_handler(clock.clone(), runs.clone(), None),
        shards.clone(),
        clock.clone(),
        Options::default(),
    )
    .unwrap();
    while runs.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no run within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (cron, scheduled, ran) = runs.lock().unwrap()[0].clone();
    assert_eq!(cron, "* * * * *");
    assert_eq!(scheduled % MINUTE_MS, 0);
    assert!(ran >= scheduled, "ran {} ms early", scheduled - ran);
    scheduler.stop();
    shards.shutdown(Duration::from_secs(5));
}
