//! Fan-out to clients: the tardis-machine wire format (more to come with `pinfeed run`).

pub mod encode;
