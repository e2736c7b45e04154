//! Finding, choosing and opening an RDMA device, its port and its GID.

pub(crate) mod provider;

use std::ffi::CStr;
use std::fmt;
use std::sync::Arc;

use safeverbs_sys as sys;

use crate::device::provider::Provider;
use crate::{Error, Result};

/// `IBV_LINK_LAYER_INFINIBAND` (an anonymous enum in verbs.h).
const LINK_LAYER_INFINIBAND: u8 = 1;

/// The names of the RDMA devices on this machine, in libibverbs' order.
pub fn device_names() -> Result<Vec<String>> {
    let list = DeviceList::get()?;
    Ok(list.iter().map(device_name).collect())
}

/// Which device, port and GID to use; anything left `None` is chosen
/// automatically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Device name, e.g. `mlx5_0` or `rxe0`.
    pub device: Option<String>,
    /// Port number (1-based).
    pub port: Option<u8>,
    /// GID table index.
    pub gid_index: Option<u8>,
}

impl DeviceOptions {
    /// Options from `SAFEVERBS_DEVICE`, `SAFEVERBS_PORT` and
    /// `SAFEVERBS_GID_INDEX`; unset or empty variables mean "automatic".
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over the variables `get` returns.
    fn from_vars(get: impl Fn(&'static str) -> Option<String>) -> Result<Self> {
        let var = |name| get(name).filter(|v| !v.is_empty());
        let num = |name: &'static str| -> Result<Option<u8>> {
            var(name)
                .map(|v| {
                    v.parse::<u8>().map_err(|_| Error::BadEnv {
                        var: name,
                        value: v,
                        expected: "a number from 0 to 255",
                    })
                })
                .transpose()
        };
        Ok(Self {
            device: var("SAFEVERBS_DEVICE"),
            port: num("SAFEVERBS_PORT")?,
            gid_index: num("SAFEVERBS_GID_INDEX")?,
        })
    }

    /// These options, with every unset field taken from `other`.
    pub fn or(self, other: DeviceOptions) -> Self {
        Self {
            device: self.device.or(other.device),
            port: self.port.or(other.port),
            gid_index: self.gid_index.or(other.gid_index),
        }
    }
}

/// The kind of a GID, as the GID table reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GidKind {
    /// InfiniBand.
    Ib,
    /// RoCE v1 (Ethernet, not routable).
    RoceV1,
    /// RoCE v2 (UDP/IP, routable).
    RoceV2,
}

/// The port and address a device was opened with.
#[derive(Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Port number (1-based).
    pub port: u8,
    /// Local identifier (InfiniBand; 0 on Ethernet).
    pub lid: u16,
    /// The GID table index in use.
    pub gid_index: u8,
    /// The GID in use.
    pub gid: [u8; 16],
    /// The GID's kind.
    pub gid_kind: GidKind,
    /// The port's active MTU in bytes.
    pub active_mtu: u32,
    /// True for an Ethernet (RoCE) port.
    pub ethernet: bool,
}

impl fmt::Debug for PortInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortInfo")
            .field("port", &self.port)
            .field("lid", &self.lid)
            .field("gid_index", &self.gid_index)
            .field(
                "gid",
                &format_args!("{}", std::net::Ipv6Addr::from(self.gid)),
            )
            .field("gid_kind", &self.gid_kind)
            .field("active_mtu", &self.active_mtu)
            .finish()
    }
}

/// The limits of a device that the library checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Queue pairs.
    pub max_qp: u32,
    /// Work requests per queue.
    pub max_qp_wr: u32,
    /// Completion queues.
    pub max_cq: u32,
    /// Entries per completion queue.
    pub max_cqe: u32,
    /// Memory regions.
    pub max_mr: u32,
    /// Bytes in one memory region.
    pub max_mr_size: u64,
    /// Scatter/gather entries per work request.
    pub max_sge: u32,
    /// Outstanding RDMA reads/atomics a queue pair may have as target.
    pub max_qp_rd_atom: u32,
}

/// An open RDMA device: its context, the port and GID chosen, its limits.
///
/// Cheap to clone; everything made from it keeps it open.
#[derive(Clone)]
pub struct Device {
    pub(crate) inner: Arc<Context>,
}

pub(crate) struct Context {
    pub(crate) ctx: *mut sys::ibv_context,
    pub(crate) name: String,
    pub(crate) port: PortInfo,
    pub(crate) limits: DeviceLimits,
    /// Who carries out its control verbs.
    pub(crate) provider: Provider,
}

// SAFETY: an `ibv_context` may be used from any thread (libibverbs is
// thread-safe); the other fields are plain data.
unsafe impl Send for Context {}
// SAFETY: as above; nothing here is mutated through `&Context`.
unsafe impl Sync for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from this provider's open and every object
        // made from it holds an `Arc<Context>`, so none is left.
        let rc = unsafe { self.provider.close_device(self.ctx) };
        if rc != 0 {
            tracing::warn!(device = %self.name, rc, "ibv_close_device failed");
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .finish_non_exhaustive()
    }
}

/// `rxe0, port 1, GID index 1 (::ffff:192.0.2.1), MTU 1024`: what was
/// chosen, for logs and banners.
impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.inner.port;
        write!(
            f,
            "{}, port {}, GID index {} ({}), MTU {}",
            self.inner.name,
            p.port,
            p.gid_index,
            std::net::Ipv6Addr::from(p.gid),
            p.active_mtu
        )
    }
}

impl Device {
    /// True when `other` is this same device context (a clone of this
    /// handle), not merely the same NIC opened again.
    pub(crate) fn same_context(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Opens the device chosen by the environment (`SAFEVERBS_DEVICE`,
    /// `SAFEVERBS_PORT`, `SAFEVERBS_GID_INDEX`) or automatically: the first
    /// device with an active port, and on it the best GID (RoCE v2 over IPv4
    /// first, as perftest chooses). The choice is logged at `info` level.
    pub fn open_default() -> Result<Self> {
        Self::open_with(&DeviceOptions::from_env()?)
    }

    /// Opens the device called `name`, choosing its port and GID
    /// automatically.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(&DeviceOptions {
            device: Some(name.to_owned()),
            ..Default::default()
        })
    }

    /// Opens a device as `options` say; unset fields are chosen
    /// automatically.
    pub fn open_with(options: &DeviceOptions) -> Result<Self> {
        let list = DeviceList::get()?;
        let names: Vec<String> = list.iter().map(device_name).collect();
        let mut last_err = None;
        for (dev, name) in list.iter().zip(&names) {
            if options.device.as_ref().is_some_and(|want| want != name) {
                continue;
            }
            match Context::open(dev, name.clone(), options) {
                Ok(ctx) => {
                    let p = &ctx.port;
                    tracing::info!(
                        device = %ctx.name,
                        port = p.port,
                        gid_index = p.gid_index,
                        gid = %std::net::Ipv6Addr::from(p.gid),
                        gid_kind = ?p.gid_kind,
                        mtu = p.active_mtu,
                        "opened RDMA device"
                    );
                    return Ok(Device {
                        inner: Arc::new(ctx),
                    });
                }
                // An explicitly named device's error is the answer.
                Err(e) if options.device.is_some() => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        match (&options.device, last_err) {
            (Some(want), _) if names.is_empty() => Err(Error::NoDevice(format!(
                "no device named {want:?}: libibverbs lists no devices at all"
            ))),
            (Some(want), _) => Err(Error::NoSuchDevice {
                name: want.clone(),
                available: names,
            }),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::NoDevice("libibverbs lists no devices".into())),
        }
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The port and GID in use.
    pub fn port(&self) -> &PortInfo {
        &self.inner.port
    }

    /// The device's limits.
    pub fn limits(&self) -> DeviceLimits {
        self.inner.limits
    }
}

impl Context {
    fn open(dev: *mut sys::ibv_device, name: String, options: &DeviceOptions) -> Result<Self> {
        // SAFETY: `dev` is an entry of the live device list.
        let ctx = unsafe { sys::ibv_open_device(dev) };
        if ctx.is_null() {
            return Err(Error::last_os("ibv_open_device"));
        }
        // From here `Drop` closes the context on every error path.
        let mut this = Context {
            ctx,
            name,
            port: PortInfo {
                port: 0,
                lid: 0,
                gid_index: 0,
                gid: [0; 16],
                gid_kind: GidKind::Ib,
                active_mtu: 0,
                ethernet: false,
            },
            limits: DeviceLimits {
                max_qp: 0,
                max_qp_wr: 0,
                max_cq: 0,
                max_cqe: 0,
                max_mr: 0,
                max_mr_size: 0,
                max_sge: 0,
                max_qp_rd_atom: 0,
            },
            provider: Provider::Verbs,
        };
        let mut attr = sys::ibv_device_attr::default();
        // SAFETY: `ctx` is open; `attr` is a valid out-parameter.
        let rc = unsafe { sys::ibv_query_device(ctx, &mut attr) };
        if rc != 0 {
            return Err(Error::errno("ibv_query_device", rc));
        }
        let clamp = |v: i32| u32::try_from(v).unwrap_or(0);
        this.limits = DeviceLimits {
            max_qp: clamp(attr.max_qp),
            max_qp_wr: clamp(attr.max_qp_wr),
            max_cq: clamp(attr.max_cq),
            max_cqe: clamp(attr.max_cqe),
            max_mr: clamp(attr.max_mr),
            max_mr_size: attr.max_mr_size,
            max_sge: clamp(attr.max_sge),
            max_qp_rd_atom: clamp(attr.max_qp_rd_atom),
        };
        this.port = this.choose_port(attr.phys_port_cnt, options)?;
        Ok(this)
    }

    fn query_port(&self, port: u8) -> Result<sys::ibv_port_attr> {
        let mut attr = sys::ibv_port_attr::default();
        // SAFETY: `ctx` is open; `attr` is a valid out-parameter.
        let rc = unsafe { sys::ibv_query_port(self.ctx, port, &mut attr) };
        if rc != 0 {
            return Err(Error::errno("ibv_query_port", rc));
        }
        Ok(attr)
    }

    fn choose_port(&self, ports: u8, options: &DeviceOptions) -> Result<PortInfo> {
        let candidates: Vec<u8> = match options.port {
            Some(p) if p == 0 || p > ports => {
                return Err(Error::NoSuchPort {
                    device: self.name.clone(),
                    port: p,
                    ports,
                })
            }
            Some(p) => vec![p],
            None => (1..=ports).collect(),
        };
        for port in candidates {
            let attr = self.query_port(port)?;
            if attr.state != sys::ibv_port_state::IBV_PORT_ACTIVE {
                if options.port.is_some() {
                    return Err(Error::PortNotActive {
                        device: self.name.clone(),
                        port,
                        state: attr.state.0,
                    });
                }
                continue;
            }
            let ethernet = attr.link_layer != LINK_LAYER_INFINIBAND;
            let (gid_index, gid, gid_kind) = self.choose_gid(port, &attr, options.gid_index)?;
            return Ok(PortInfo {
                port,
                lid: attr.lid,
                gid_index,
                gid,
                gid_kind,
                active_mtu: mtu_bytes(attr.active_mtu),
                ethernet,
            });
        }
        Err(Error::NoDevice(format!(
            "device {} has no active port",
            self.name
        )))
    }

    fn choose_gid(
        &self,
        port: u8,
        attr: &sys::ibv_port_attr,
        wanted: Option<u8>,
    ) -> Result<(u8, [u8; 16], GidKind)> {
        let len = u32::try_from(attr.gid_tbl_len).unwrap_or(0).min(256);
        let mut best: Option<(u32, u8, [u8; 16], GidKind)> = None;
        for index in 0..len {
            let mut entry = sys::ibv_gid_entry::default();
            // SAFETY: `ctx` is open; `entry` is a valid out-parameter.
            let rc = unsafe { sys::ibv_query_gid_ex(self.ctx, port.into(), index, &mut entry, 0) };
            if rc != 0 {
                continue; // an empty table slot
            }
            // SAFETY: both members of the union are 16 plain bytes.
            let gid = unsafe { entry.gid.raw };
            let kind = match sys::ibv_gid_type(entry.gid_type) {
                sys::ibv_gid_type::IBV_GID_TYPE_ROCE_V2 => GidKind::RoceV2,
                sys::ibv_gid_type::IBV_GID_TYPE_ROCE_V1 => GidKind::RoceV1,
                _ => GidKind::Ib,
            };
            let Ok(index) = u8::try_from(index) else {
                break;
            };
            if wanted == Some(index) {
                return Ok((index, gid, kind));
            }
            let score = gid_score(&gid, kind);
            if score > 0 && best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, index, gid, kind));
            }
        }
        match (wanted, best) {
            (Some(w), _) => Err(Error::NoSuchGid {
                device: self.name.clone(),
                port,
                index: w,
                table: len,
            }),
            (None, Some((_, index, gid, kind))) => Ok((index, gid, kind)),
            (None, None) => Err(Error::NoDevice(format!(
                "port {port} of {} has no usable GID (is the network interface up with an \
                 address?)",
                self.name
            ))),
        }
    }
}

/// How much a GID is preferred: RoCE v2 over IPv4 first, then RoCE v2 over
/// a global IPv6 address, then anything else that is not all zeroes (as
/// perftest's GID selection does). 0 means unusable.
fn gid_score(gid: &[u8; 16], kind: GidKind) -> u32 {
    if gid.iter().all(|&b| b == 0) {
        return 0;
    }
    let ipv4_mapped = gid[..10].iter().all(|&b| b == 0) && gid[10] == 0xff && gid[11] == 0xff;
    let link_local = gid[0] == 0xfe && gid[1] & 0xc0 == 0x80;
    match kind {
        GidKind::RoceV2 if ipv4_mapped => 5,
        GidKind::RoceV2 if !link_local => 4,
        GidKind::Ib => 3,
        GidKind::RoceV2 => 2,
        GidKind::RoceV1 => 1,
    }
}

/// The byte size of an `ibv_mtu` value (256 for unknown values).
pub(crate) fn mtu_bytes(mtu: sys::ibv_mtu) -> u32 {
    match mtu.0 {
        1..=5 => 128 << mtu.0,
        _ => 256,
    }
}

/// The `ibv_mtu` value of a byte size (the largest not above it).
pub(crate) fn mtu_enum(bytes: u32) -> sys::ibv_mtu {
    let v = (1..=5u32).rev().find(|&v| 128 << v <= bytes).unwrap_or(1);
    sys::ibv_mtu(v)
}

/// The device list, freed on drop.
struct DeviceList {
    list: *mut *mut sys::ibv_device,
    len: usize,
}

impl DeviceList {
    fn get() -> Result<Self> {
        let mut n = 0;
        // SAFETY: `n` is a valid out-parameter.
        let list = unsafe { sys::ibv_get_device_list(&mut n) };
        if list.is_null() {
            let err = std::io::Error::last_os_error();
            return Err(Error::NoDevice(format!("ibv_get_device_list: {err}")));
        }
        Ok(Self {
            list,
            len: usize::try_from(n).unwrap_or(0),
        })
    }

    fn iter(&self) -> impl Iterator<Item = *mut sys::ibv_device> + '_ {
        // SAFETY: libibverbs returned an array of `len` device pointers,
        // live until `ibv_free_device_list`.
        (0..self.len).map(move |i| unsafe { *self.list.add(i) })
    }
}

impl Drop for DeviceList {
    fn drop(&mut self) {
        // SAFETY: `list` came from `ibv_get_device_list`, freed once here.
        unsafe { sys::ibv_free_device_list(self.list) };
    }
}

fn device_name(dev: *mut sys::ibv_device) -> String {
    // SAFETY: `dev` is a live device; its name is a NUL-terminated string
    // that lives as long as the device list.
    let name = unsafe { CStr::from_ptr(sys::ibv_get_device_name(dev)) };
    name.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_the_environment_refuse_what_is_not_a_port_number() {
        let vars = |port: &'static str| {
            move |name| match name {
                "SAFEVERBS_DEVICE" => Some("rxe0".to_owned()),
                "SAFEVERBS_PORT" => Some(port.to_owned()),
                _ => None,
            }
        };
        let ok = DeviceOptions::from_vars(vars("2")).unwrap();
        assert_eq!(
            (ok.device.as_deref(), ok.port, ok.gid_index),
            (Some("rxe0"), Some(2), None)
        );
        assert_eq!(DeviceOptions::from_vars(vars("")).unwrap().port, None);
        let err = DeviceOptions::from_vars(vars("256")).unwrap_err();
        assert!(
            matches!(&err, Error::BadEnv { var: "SAFEVERBS_PORT", value, .. } if value == "256"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "SAFEVERBS_PORT=\"256\" is not a number from 0 to 255"
        );
    }

    #[test]
    fn gid_scores_follow_perftest_preference() {
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[192, 0, 2, 1]);
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 1;
        assert!(gid_score(&v4, GidKind::RoceV2) > gid_score(&ll, GidKind::RoceV2));
        assert!(gid_score(&ll, GidKind::RoceV2) > gid_score(&ll, GidKind::RoceV1));
        assert_eq!(gid_score(&[0; 16], GidKind::RoceV2), 0);
    }

    #[test]
    fn mtu_conversions_round_trip() {
        for bytes in [256, 512, 1024, 2048, 4096] {
            assert_eq!(mtu_bytes(mtu_enum(bytes)), bytes);
        }
        assert_eq!(mtu_bytes(mtu_enum(1500)), 1024);
    }

    #[test]
    fn env_options_reject_garbage() {
        let opts = DeviceOptions {
            device: None,
            port: Some(1),
            gid_index: None,
        };
        let merged = opts.or(DeviceOptions {
            device: Some("x".into()),
            port: Some(2),
            gid_index: Some(3),
        });
        assert_eq!(merged.port, Some(1));
        assert_eq!(merged.gid_index, Some(3));
    }
}
