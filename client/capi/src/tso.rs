//! The cluster's timestamp oracle for C (`tsod_tso_*`): a handle on
//! `tsod_client::tso::Tso` and the tokio runtime it runs on.
//!
//! The calls are synchronous: each blocks the calling thread until the
//! answer (or the deadline). Underneath, the handle owns one multi-thread
//! tokio runtime with a single worker thread (`tsod-tso`), which runs the
//! client's batching task and its QUIC connection; a calling thread waits
//! with `Runtime::block_on`, which any number of threads may do at once.
//! Calls from many threads are batched into few requests, as in Rust.
//! A thread that is itself running a tokio runtime must not call these
//! (tokio refuses to block inside a runtime: `TSOD_ERR_INTERNAL`).

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use tokio::runtime::Runtime;
use tsod_client::RemoteOptions;
use tsod_client::cluster::ClusterFile;
use tsod_client::tso::{Tso, TsoOptions, TsoRange};

use crate::error::{Error, guard, tsod_error};
use crate::ffi;
use crate::hlc::tsod_hts;

/// A client of the cluster's TSO (opaque). Made by `tsod_tso_connect`,
/// freed by `tsod_tso_close`. Thread-safe: any number of threads may call
/// `tsod_tso_next` and `tsod_tso_reserve` on one handle at once (and
/// should share one: their calls are batched together).
#[expect(non_camel_case_types, reason = "the C name, as the header shows it")]
#[derive(Debug)]
pub struct tsod_tso {
    /// Dropped first: the client's task ends when its last handle goes.
    tso: Tso,
    runtime: Runtime,
}

/// Consecutive TSO timestamps: `first`, `first + 1`, …, `last` (raw
/// values; `last - first + 1 == count`). Each is unique in the cluster and
/// above every timestamp this client had received when it asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct tsod_tso_range {
    /// The first timestamp.
    pub first: tsod_hts,
    /// The last timestamp.
    pub last: tsod_hts,
    /// How many: 1 … 65536.
    pub count: u32,
}

impl From<TsoRange> for tsod_tso_range {
    fn from(range: TsoRange) -> Self {
        Self { first: range.first().raw(), last: range.last().raw(), count: range.count() }
    }
}

/// Most timestamps one `tsod_tso_reserve` gives. (A literal, for the
/// header; a test checks it against the protocol's limit.)
pub const TSOD_TSO_MAX_COUNT: u32 = 65_536;

/// Connects to the TSO of the cluster described by the cluster file
/// `cluster_file` and returns a handle in `*out`.
///
/// The cluster file is JSON, as `tsod cluster init` and the testbed write
/// it: `{"ca": "ca.crt", "sites": [{"name": "bj-a", "address":
/// "10.1.0.10:4460"}, ...]}` (a relative `ca` is relative to the file's
/// directory; other keys are ignored). The client dials the nearest site and
/// moves to another when it is lost. `cert_path` and `key_path` are the PEM
/// client certificate and key (`tsod cluster add-client`) for clusters that
/// require one, or both NULL to connect anonymously.
///
/// `timeout_ms` bounds the connection (dialling and handshake) and is each
/// later call's deadline: a `tsod_tso_next` or `tsod_tso_reserve` retries
/// what the service asks to retry (no leader yet, a lost site) until then
/// and fails with `TSOD_ERR_TIMEOUT` after. 0 means the default, 3 s.
///
/// Ownership: the strings stay the caller's (they are read during the
/// call). On `TSOD_OK`, `*out` is a new handle the caller owns and frees
/// with `tsod_tso_close`; on failure `*out` is left unchanged.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER` (`cluster_file`, `out`),
/// `TSOD_ERR_INVALID_ARGUMENT` (only one of `cert_path` and `key_path`; a
/// site address that does not resolve), `TSOD_ERR_CLUSTER_FILE`,
/// `TSOD_ERR_CONNECT` (no site reachable, a CA or certificate that does
/// not load or match), `TSOD_ERR_TIMEOUT`, `TSOD_ERR_INTERNAL` (no
/// runtime thread could be started).
///
/// # Safety
///
/// `cluster_file`, `cert_path` and `key_path` are each NULL or a NUL-terminated string;
/// `out` is NULL or points to writable memory for a `tsod_tso *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_tso_connect(
    cluster_file: *const c_char,
    cert_path: *const c_char,
    key_path: *const c_char,
    timeout_ms: u32,
    out: *mut *mut tsod_tso,
) -> tsod_error {
    guard(|| {
        let out = ffi::out_param(out, "out")?;
        // SAFETY: each string is NULL or NUL-terminated (this function's contract).
        let (file, cert, key) = unsafe {
            (ffi::path(cluster_file, "cluster_file")?, ffi::optional_path(cert_path), ffi::optional_path(key_path))
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(Error::Invalid("give both cert_path and key_path, or neither".to_owned())),
        };
        let cluster = ClusterFile::load(&file)?;
        let timeout =
            if timeout_ms == 0 { TsoOptions::DEFAULT_DEADLINE } else { Duration::from_millis(u64::from(timeout_ms)) };
        let mut options = cluster.tso_options();
        options.remote.client_identity = identity;
        options.remote.request_timeout = timeout.min(RemoteOptions::DEFAULT_REQUEST_TIMEOUT);
        options.deadline = timeout;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tsod-tso")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the TSO client's runtime thread: {e}")))?;
        // The timer is made inside the runtime (tokio's timers need one).
        let connecting = async { tokio::time::timeout(timeout, Tso::connect_cluster(&cluster, options)).await };
        let tso = match runtime.block_on(connecting) {
            Ok(connected) => connected?,
            Err(_) => {
                return Err(Error::Timeout(format!("no site of {} answered within {timeout:?}", file.display())));
            }
        };
        let handle = Box::into_raw(Box::new(tsod_tso { tso, runtime }));
        // SAFETY: `out` points to a writable `tsod_tso *` (this function's contract).
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Closes the connection, stops the handle's runtime thread and frees the
/// handle. NULL is ignored. Must not be called from a thread running a
/// tokio runtime. The caller must not use `tso` afterwards, nor close it
/// while another thread is inside a call on it.
///
/// # Safety
///
/// `tso` is NULL or a handle from `tsod_tso_connect` that was not closed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_tso_close(tso: *mut tsod_tso) {
    if tso.is_null() {
        return;
    }
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a non-NULL `tso` was returned by tsod_tso_connect and is
        // freed only here, once, when no call uses it (this function's contract).
        drop(unsafe { Box::from_raw(tso) });
    }));
    if let Err(payload) = dropped {
        std::mem::forget(payload);
    }
}

/// One TSO timestamp, in `*out`: unique in the cluster, and greater than
/// every timestamp this handle had returned before the call started.
/// Blocks until it arrives or the deadline passes.
///
/// Ownership: `tso` stays the caller's; `*out` is written on `TSOD_OK` only.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_TIMEOUT` (no
/// leader answered within the deadline; the message says why),
/// `TSOD_ERR_CONNECT`, `TSOD_ERR_REFUSED`, `TSOD_ERR_PROTOCOL`,
/// `TSOD_ERR_INTERNAL`.
///
/// # Safety
///
/// `tso` is NULL or a live handle from `tsod_tso_connect`;
/// `out` is NULL or points to writable memory for a `tsod_hts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_tso_next(tso: *const tsod_tso, out: *mut tsod_hts) -> tsod_error {
    guard(|| {
        // SAFETY: `tso` is NULL or a live handle (this function's contract).
        let tso = unsafe { ffi::handle(tso, "tso") }?;
        let out = ffi::out_param(out, "out")?;
        let ts = tso.runtime.block_on(tso.tso.next())?;
        // SAFETY: `out` points to a writable `tsod_hts` (this function's contract).
        unsafe { out.write(ts.raw()) };
        Ok(())
    })
}

/// `count` consecutive TSO timestamps (1 … `TSOD_TSO_MAX_COUNT`), in
/// `*out`: one request, however many. Blocks as `tsod_tso_next` does.
///
/// Ownership: as for `tsod_tso_next`.
///
/// Returns the codes of `tsod_tso_next`, and `TSOD_ERR_INVALID_ARGUMENT`
/// for a `count` of 0 or above `TSOD_TSO_MAX_COUNT`.
///
/// # Safety
///
/// `tso` is NULL or a live handle from `tsod_tso_connect`;
/// `out` is NULL or points to writable memory for a `tsod_tso_range`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_tso_reserve(tso: *const tsod_tso, count: u32, out: *mut tsod_tso_range) -> tsod_error {
    guard(|| {
        // SAFETY: `tso` is NULL or a live handle (this function's contract).
        let tso = unsafe { ffi::handle(tso, "tso") }?;
        let out = ffi::out_param(out, "out")?;
        let range = tso.runtime.block_on(tso.tso.reserve(count))?;
        // SAFETY: `out` points to a writable `tsod_tso_range` (this function's contract).
        unsafe { out.write(range.into()) };
        Ok(())
    })
}

/// The name of the site the handle asks now (it moves when a site is
/// lost), NUL-terminated, into `buf` of `len` bytes.
///
/// Ownership: `buf` is the caller's.
///
/// Returns `TSOD_OK`, `TSOD_ERR_NULL_POINTER`, `TSOD_ERR_BUFFER_TOO_SMALL`
/// (then as much of the name as fits and a NUL are written, if `len` > 0).
///
/// # Safety
///
/// `tso` is NULL or a live handle from `tsod_tso_connect`;
/// `buf` is NULL or points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsod_tso_site(tso: *const tsod_tso, buf: *mut c_char, len: usize) -> tsod_error {
    guard(|| {
        // SAFETY: `tso` is NULL or a live handle (this function's contract).
        let tso = unsafe { ffi::handle(tso, "tso") }?;
        if buf.is_null() {
            return Err(Error::Null("buf"));
        }
        let name = tso.tso.site().name;
        let name = std::ffi::CString::new(name).map_err(|e| Error::Internal(e.to_string()))?;
        // SAFETY: `buf` is non-NULL and points to `len` writable bytes the
        // caller owns (this function's contract).
        let out = unsafe { ffi::bytes_mut(buf, len) };
        if ffi::copy_c_string(&name, out) {
            Ok(())
        } else {
            Err(Error::TooSmall { what: "buf", given: len, needed: name.as_bytes_with_nul().len() })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_constant_is_the_protocol_limit() {
        assert_eq!(TSOD_TSO_MAX_COUNT, tsod_proto::wire::MAX_TSO_COUNT);
    }

    #[test]
    fn null_arguments_are_refused_before_any_work() {
        let mut out = std::ptr::null_mut();
        let mut ts = 0;
        let mut range = tsod_tso_range { first: 0, last: 0, count: 0 };
        let mut buf = [0 as c_char; 8];
        // SAFETY: NULL pointers are allowed; the out-parameters are writable.
        unsafe {
            let null = tsod_error::TSOD_ERR_NULL_POINTER;
            assert_eq!(tsod_tso_connect(std::ptr::null(), std::ptr::null(), std::ptr::null(), 0, &mut out), null);
            assert_eq!(
                tsod_tso_connect(c"/nonexistent".as_ptr(), std::ptr::null(), std::ptr::null(), 0, std::ptr::null_mut()),
                null
            );
            assert_eq!(tsod_tso_next(std::ptr::null(), &mut ts), null);
            assert_eq!(tsod_tso_reserve(std::ptr::null(), 1, &mut range), null);
            assert_eq!(tsod_tso_site(std::ptr::null(), buf.as_mut_ptr(), buf.len()), null);
            tsod_tso_close(std::ptr::null_mut());
            let half = tsod_tso_connect(c"/nonexistent".as_ptr(), c"c.crt".as_ptr(), std::ptr::null(), 0, &mut out);
            assert_eq!(half, tsod_error::TSOD_ERR_INVALID_ARGUMENT);
            let missing = tsod_tso_connect(c"/nonexistent".as_ptr(), std::ptr::null(), std::ptr::null(), 0, &mut out);
            assert_eq!(missing, tsod_error::TSOD_ERR_CLUSTER_FILE);
        }
        assert!(out.is_null());
    }
}
