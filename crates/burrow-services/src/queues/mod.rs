//! Queues: durable at-least-once queues as system objects (in progress).
