/**
 * PCIe hotplug through QMP, as kata-runtime hot-adds a VFIO device to a root
 * port: an optional backing object (object-add), then device_add on a free
 * root port (rp<i>); removal is device_del, done once QEMU reports
 * DEVICE_DELETED (the guest's pciehp has let the device go), then object-del.
 * Devices and objects are given in QEMU's command-line syntax.
 */
import { OsbuilderError } from '../core/errors.js';
import { QmpSession } from './qmp.js';
import { rootPortId } from './qemu.js';

export interface DeviceSpec {
  driver: string;
  id: string;
  props: Record<string, string>;
}

export interface ObjectSpec {
  qomType: string;
  id: string;
  props: Record<string, string | number | boolean>;
}

function usage(what: string, spec: string, why: string, example: string): OsbuilderError {
  return new OsbuilderError('USAGE', `${what} ${JSON.stringify(spec)}: ${why}`, `e.g. ${example}`);
}

/** QEMU keyval: "a,k=v,k2=v,,with,,commas" → ["a", "k=v", "k2=v,with,commas"]. */
export function splitKeyval(spec: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] !== ',') cur += spec[i];
    else if (spec[i + 1] === ',') {
      cur += ',';
      i++;
    } else {
      out.push(cur);
      cur = '';
    }
  }
  out.push(cur);
  return out;
}

function keyvals(parts: string[], what: string, spec: string, example: string): Record<string, string> {
  const props: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw usage(what, spec, `"${p}" is not key=value`, example);
    props[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return props;
}

const DEVICE_EXAMPLE = '--hot-add ivshmem-plain,id=gpu0,memdev=gpumem';
const OBJECT_EXAMPLE = '--hot-add-object memory-backend-ram,id=gpumem,size=4G';

/** A -device spec ("driver,id=…,prop=…"); the id defaults to `defaultId`. */
export function parseDeviceSpec(spec: string, defaultId: string): DeviceSpec {
  const [driver, ...rest] = splitKeyval(spec);
  if (!driver || driver.includes('=')) throw usage('--hot-add', spec, 'expected the device driver first', DEVICE_EXAMPLE);
  const { id, bus, ...props } = keyvals(rest, '--hot-add', spec, DEVICE_EXAMPLE);
  if (bus !== undefined) throw usage('--hot-add', spec, 'bus= is chosen by osbuilder (a free root port)', DEVICE_EXAMPLE);
  return { driver, id: id ?? defaultId, props };
}

const SIZE = /^(\d+)([KMGT]?)$/i;
const SHIFT: Record<string, number> = { '': 0, K: 10, M: 20, G: 30, T: 40 };

/** QMP's object-add is typed: sizes and numbers as integers, on/off as booleans. */
function typedValue(v: string): string | number | boolean {
  if (/^(on|true)$/.test(v)) return true;
  if (/^(off|false)$/.test(v)) return false;
  const m = SIZE.exec(v);
  return m ? Number(m[1]) * 2 ** SHIFT[m[2]!.toUpperCase()]! : v;
}

/** An -object spec ("qom-type,id=…,prop=…"); id is required (a device refers to it). */
export function parseObjectSpec(spec: string): ObjectSpec {
  const [qomType, ...rest] = splitKeyval(spec);
  if (!qomType || qomType.includes('=')) throw usage('--hot-add-object', spec, 'expected the object type first', OBJECT_EXAMPLE);
  const { id, ...props } = keyvals(rest, '--hot-add-object', spec, OBJECT_EXAMPLE);
  if (!id) throw usage('--hot-add-object', spec, 'an id= is required', OBJECT_EXAMPLE);
  return { qomType, id, props: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, typedValue(v)])) };
}

export function noRootPortError(what: string): OsbuilderError {
  return new OsbuilderError(
    'CONFIG_INVALID',
    `cannot hot-add ${what}: the VM has no PCIe root port to plug it into`,
    'set pcie_root_port = N with hot_plug_vfio = "root-port" (or hotplug_vfio_on_root_bus = true) and machine_type = "q35", or pass --pcie-root-port N',
  );
}

export class Hotplug {
  /** Device id → the root port it occupies. */
  private readonly plugged = new Map<string, string>();

  constructor(
    private readonly qmpSocket: string,
    private readonly rootPorts: number,
  ) {}

  private freePort(id: string): string {
    if (this.rootPorts === 0) throw noRootPortError(id);
    const used = new Set(this.plugged.values());
    for (let i = 0; i < this.rootPorts; i++) if (!used.has(rootPortId(i))) return rootPortId(i);
    throw new OsbuilderError(
      'CONFIG_INVALID',
      `cannot hot-add ${id}: all ${this.rootPorts} PCIe root ports hold a device`,
      'raise pcie_root_port (--pcie-root-port), or remove a device first',
    );
  }

  private async withQmp<T>(fn: (q: QmpSession) => Promise<T>): Promise<T> {
    const q = await QmpSession.open(this.qmpSocket);
    try {
      return await fn(q);
    } finally {
      q.close();
    }
  }

  /** object-add for a device's backing (memory for an ivshmem BAR, say). */
  async addObject(o: ObjectSpec): Promise<void> {
    await this.withQmp((q) => q.execute('object-add', { 'qom-type': o.qomType, id: o.id, ...o.props }));
  }

  /** device_add on the first free root port; resolves with the port. */
  async add(d: DeviceSpec): Promise<string> {
    const port = this.freePort(d.id);
    await this.withQmp((q) => q.execute('device_add', { driver: d.driver, id: d.id, bus: port, ...d.props }));
    this.plugged.set(d.id, port);
    return port;
  }

  /** device_del, then waits until QEMU says the guest let it go (pciehp waits 5 s for a cancel). */
  async remove(id: string, timeoutMs = 60_000): Promise<void> {
    if (!this.plugged.has(id))
      throw new OsbuilderError('USAGE', `cannot remove ${id}: it was not hot-added here`, `hot-added: ${[...this.plugged.keys()].join(', ') || 'none'}`);
    await this.withQmp(async (q) => {
      await q.execute('device_del', { id });
      await q.waitEvent((e) => e.event === 'DEVICE_DELETED' && e.data.device === id, `device_del ${id}`, timeoutMs);
    });
    this.plugged.delete(id);
  }

  /** object-del of a backing object no device uses any more. */
  async removeObject(id: string): Promise<void> {
    await this.withQmp((q) => q.execute('object-del', { id }));
  }

  get devices(): Array<{ id: string; port: string }> {
    return [...this.plugged].map(([id, port]) => ({ id, port }));
  }
}
