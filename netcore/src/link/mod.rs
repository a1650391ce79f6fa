//! Link drivers (being written).
