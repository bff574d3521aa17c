//! Throwaway MariaDB servers (owned by the sandbox work).
