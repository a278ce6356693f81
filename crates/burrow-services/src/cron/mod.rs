//! Cron Triggers: the node's scheduler, which runs the Worker's `scheduled` handler for each
//! expression of `triggers.crons`, at the times Cloudflare's cron syntax gives (parsed by
//! [`burrow_config::cron`]), in UTC, by the runtime's [`Clock`](burrow_runtime::clock::Clock).
//!
//! # Protocol
//! - One loop per node runs on shard 0. It keeps each trigger's next fire time, sleeps on the
//!   clock until the soonest, and fires every trigger that is due. A trigger never fires before
//!   its time: the loop re-checks the clock after every wake-up.
//! - Firing hands the invocation to a shard, round-robin (stateless invocations run on any
//!   shard), and does not wait for it. The handler's future is built and run on that shard, so
//!   it need not be `Send`: the Rust SDK and the JavaScript runtime both plug in through
//!   [`ScheduledHandler`].
//! - Invocations of one trigger that are still running are bounded
//!   ([`Options::max_running_per_trigger`]); a fire beyond that is skipped and logged, so a
//!   handler slower than its schedule cannot pile up work without limit.
//! - Missed times are not replayed, as on Cloudflare. At start the first fire time of each
//!   trigger is the first one after now, so times that passed while the node was down never run.
//!   If the loop wakes late (the process was stopped, the machine slept), each trigger fires once,
//!   for its latest missed time, and the earlier ones are skipped.
//! - [`Scheduler::run_now`] runs the handler at once for any cron string, as the local trigger
//!   endpoints (`/__scheduled?cron=…`, `/cdn-cgi/handler/scheduled?cron=…`) do.
//! - In a cluster, one node (the leader) will run the loop; today there is one node.

mod scheduler;

pub use scheduler::{
    Error, Options, ScheduledController, ScheduledHandler, Scheduler, Trigger, TriggerStats,
};
