//! Everything a person or a program reads: transition lines, summary tables, bar charts, JSON.
pub mod chart;
pub mod clock;
pub mod closes;
pub mod duration;
pub mod line;
pub mod table;
pub mod top;
