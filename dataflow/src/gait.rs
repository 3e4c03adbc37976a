//! Gait metrics from tracks: speed, stride frequency, gait class. Pure logic, no timely.
