//! Cron triggers: the node scheduler that invokes `scheduled` handlers (in progress).
