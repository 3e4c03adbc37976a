//! horsestream-dataflow (work in progress).
