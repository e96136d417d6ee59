//! What the examples share: where to find etcd.

/// The endpoints from `ETCD_ENDPOINTS` (comma-separated), or
/// `127.0.0.1:2379`.
pub fn endpoints() -> Vec<String> {
    std::env::var("ETCD_ENDPOINTS")
        .unwrap_or_else(|_| "127.0.0.1:2379".into())
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect()
}
