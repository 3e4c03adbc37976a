//! horsestream-sinks (work in progress).
