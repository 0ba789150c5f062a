mod closes;
mod dwell;
