//! A missing device is a clear error, never a panic: on a machine without
//! RDMA the error says how to run on Soft-RoCE; with a device, asking for
//! one that does not exist names the ones that do.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{trials, Skip, Test};
use safeverbs::{device_names, Device, DeviceOptions, Error};

/// Without a device (where there is one the harness skips it).
fn opening_without_a_device_explains_the_soft_roce_machine() {
    let names = device_names().unwrap_or_default();
    assert!(names.is_empty(), "this machine has RDMA devices {names:?}");
    let err = Device::open_default().unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::NoDevice(_)), "{err}");
    assert!(
        err.to_string().contains("softroce/run"),
        "the error says how to run without an RNIC"
    );
}

fn a_device_that_does_not_exist_is_named_in_the_error() {
    let err = Device::open("no_such_rdma_device").unwrap_err();
    println!("{err}");
    let text = err.to_string();
    match device_names().unwrap_or_default() {
        names if names.is_empty() => assert!(text.contains("softroce/run"), "{text}"),
        names => {
            assert!(
                matches!(&err, Error::NoSuchDevice { name, available }
                    if name == "no_such_rdma_device" && *available == names),
                "{err:?}"
            );
            assert!(text.contains("no_such_rdma_device"), "{text}");
            assert!(
                names.iter().all(|n| text.contains(n.as_str())),
                "lists the devices: {text}"
            );
        }
    }
}

fn a_port_or_gid_that_does_not_exist_is_a_clear_error(dev: &Device) -> Result<(), Skip> {
    common::real_device(dev, "opens the device by name through libibverbs")?;
    let name = dev.name().to_owned();
    let bad_port = DeviceOptions {
        device: Some(name.clone()),
        port: Some(9),
        gid_index: None,
    };
    let err = Device::open_with(&bad_port).unwrap_err();
    println!("{err}");
    assert!(
        matches!(&err, Error::NoSuchPort { port: 9, ports, .. } if *ports < 9),
        "{err:?}"
    );
    assert!(err.to_string().contains("no port 9"), "{err}");
    let bad_gid = DeviceOptions {
        device: Some(name),
        port: None,
        gid_index: Some(250),
    };
    let err = Device::open_with(&bad_gid).unwrap_err();
    println!("{err}");
    assert!(
        matches!(&err, Error::NoSuchGid { index: 250, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("GID index 250"), "{err}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    common::run(trials![
        no_device opening_without_a_device_explains_the_soft_roce_machine,
        host a_device_that_does_not_exist_is_named_in_the_error,
        device a_port_or_gid_that_does_not_exist_is_a_clear_error,
    ])
}
