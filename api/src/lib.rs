//! horsestream-api (work in progress).
