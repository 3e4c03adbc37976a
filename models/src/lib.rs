//! horsestream-models (work in progress).
