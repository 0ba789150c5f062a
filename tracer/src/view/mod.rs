//! Everything a person or a program reads: transition lines, summary tables, bar charts, JSON,
//! the `tracer top` screen.
pub mod chart;
pub mod closes;
pub mod histogram;
pub mod interval;
pub mod line;
pub mod states;
pub mod table;
pub mod top;
pub mod wrap;
