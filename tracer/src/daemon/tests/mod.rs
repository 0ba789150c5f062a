//! The protocol without a socket (round trips, malformed input), the socket file and the
//! server's connections over real Unix sockets in a temporary directory (no root needed).
mod fixtures;
mod protocol;
mod server;
mod socket;
