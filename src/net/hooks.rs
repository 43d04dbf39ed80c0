//! Test hooks of the network layer, read once from the environment at start. They
//! exist so that tests can prove the failure paths with the real binary: a byte
//! flipped in transit, a transfer slow enough to be killed halfway. Unset, they do
//! nothing; without the `test-hooks` cargo feature they are never read.

/// What the environment asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestHooks {
    /// `JHACK_TEST_CORRUPT_GROUP=N`: the first time this node serves group N of any
    /// blob, one byte of it is flipped on the wire.
    pub corrupt_group: Option<u64>,
    /// `JHACK_TEST_SEND_BYTES_PER_SEC=B`: blob data is served at most this fast.
    pub send_bytes_per_sec: Option<u64>,
}

impl TestHooks {
    pub(crate) fn from_env() -> TestHooks {
        if !cfg!(feature = "test-hooks") {
            return TestHooks::default();
        }
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        TestHooks {
            corrupt_group: num("JHACK_TEST_CORRUPT_GROUP"),
            send_bytes_per_sec: num("JHACK_TEST_SEND_BYTES_PER_SEC").filter(|&b| b > 0),
        }
    }
}
