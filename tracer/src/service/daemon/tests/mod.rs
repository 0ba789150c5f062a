//! The protocol without a socket (round trips, malformed input), the socket file and the
//! server's connections over real Unix sockets in a temporary directory (no root needed), and
//! a property test throwing hostile input at it.
mod fixtures;
mod fuzz;
mod protocol;
mod server;
mod serving;
mod socket;
