/**
 * The default kernel proven by what pods do in Kata guests (issue 17 item 3):
 * each group boots the guest kernel with the agent image (virtio-blk, so the
 * guest has a block device for io.max) and runs one container through
 * Kata's agent API. The container's rootfs is Debian with the real tools
 * (iptables, nftables, iproute2, keyutils, inotify-tools, fatrace, attr);
 * its bundle grants every capability and a writable cgroup2 mount, as a
 * privileged pod would have. Waits poll for the event they expect, never sleep
 * for a fixed time before checking.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '../../image-builder/index.js';
import { agentRootfs } from '../support/agent.js';
import { bootJson, vmNamer } from '../support/boot.js';
import { makeTempDir, workloadRootfs } from '../support/fixtures.js';
import { guestKernel, type GuestKernel } from '../support/kernel.js';

let dir: string;
let kernel: GuestKernel;
let image: string;
let rootfs: string;
const vmName = vmNamer('osb-wl');

/** Every capability the agent knows (a privileged pod's set). */
const ALL_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** A privileged bundle over the shared workload rootfs (read-only; scratch space on tmpfs). */
async function privilegedBundle(name: string): Promise<string> {
  const bundle = join(dir, name);
  await mkdir(bundle, { recursive: true });
  const tmpfs = (destination: string) => ({ destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
  const config = {
    ociVersion: '1.1.0',
    process: {
      args: ['true'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root'],
      cwd: '/',
      user: { uid: 0, gid: 0 },
      capabilities: { bounding: ALL_CAPS, effective: ALL_CAPS, permitted: ALL_CAPS },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: true },
    hostname: name,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: [] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup2', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev'] },
      tmpfs('/tmp'),
      tmpfs('/run'),
      tmpfs('/mnt'),
    ],
    linux: { namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })) },
  };
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}

/** Runs `script` (sh -ec) in a privileged container of a fresh guest; its stdout, after a zero exit. */
async function inGuest(group: string, script: string): Promise<string> {
  const bundle = await privilegedBundle(group);
  const r = await bootJson(vmName(), kernel.bzImage, ['--image', image, '--disable-image-nvdimm', '--bundle', bundle], ['sh', '-ec', script]);
  const c = r.json?.container;
  if (r.exitCode !== 0 || c?.exitCode !== 0)
    throw new Error(`${group} failed in the guest (exit ${c?.exitCode ?? r.exitCode}):\n${c?.stdout ?? r.stdout}\n${c?.stderr ?? r.stderr}`);
  return c!.stdout ?? '';
}

beforeAll(async () => {
  dir = await makeTempDir('osb-workloads-');
  kernel = await guestKernel();
  rootfs = await workloadRootfs();
  image = join(dir, 'kata.img');
  await buildImage({ rootfs: await agentRootfs(join(dir, 'image-root')), output: image });
}, 20 * 60_000);

describe('the default kernel runs what pods do (one guest per group)', () => {
  it('netfilter: iptables and ip6tables REDIRECT (nft and legacy backends) move connections, an nft ruleset with a set and a redirect loads', async () => {
    const out = await inGuest(
      'netfilter',
      `
ip link set lo up
iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 80 -j REDIRECT --to-ports 8080
ip6tables -t nat -A OUTPUT -p tcp -d ::1 --dport 80 -j REDIRECT --to-ports 8080
iptables-legacy -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 82 -j REDIRECT --to-ports 8080
cat > /run/rules.nft <<'EOF'
table inet osb {
  set blocked {
    type ipv4_addr
    elements = { 192.0.2.1 }
  }
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr @blocked counter reject
  }
}
table ip osbnat {
  chain out {
    type nat hook output priority -100;
    tcp dport 81 redirect to :8080
  }
}
EOF
nft -f /run/rules.nft
# Each connection to port $2 of $1 must reach the listener on 8080.
through() {
  nc -l "$1" 8080 > /run/got & l=$!
  until echo "via $2" | nc -N "$1" "$2" 2>/dev/null; do kill -0 $l; done
  wait $l; echo "$1 $2: $(cat /run/got)"
}
through 127.0.0.1 80
through ::1 80
through 127.0.0.1 81
through 127.0.0.1 82
echo @@; iptables -t nat -S OUTPUT; ip6tables -t nat -S OUTPUT; iptables-legacy -t nat -S OUTPUT
echo @@; nft list table inet osb
`,
    );
    const [moved, rules, nft] = out.split('@@\n');
    expect(moved).toBe('127.0.0.1 80: via 80\n::1 80: via 80\n127.0.0.1 81: via 81\n127.0.0.1 82: via 82\n');
    expect(rules).toContain('-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080');
    expect(rules).toContain('-A OUTPUT -d ::1/128 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080');
    expect(rules).toContain('-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 82 -j REDIRECT --to-ports 8080');
    expect(nft).toMatch(/elements = \{ 192\.0\.2\.1 \}/);
    expect(nft).toMatch(/ip daddr @blocked counter packets \d+ bytes \d+ reject/);
  });

  it('network devices: a bridge with a veth port, a macvlan, a macvtap and a vxlan are created', async () => {
    const out = await inGuest(
      'netdev',
      `
ip link add br0 type bridge
ip link add veth0 type veth peer name veth1
ip link set veth1 master br0
ip link add mv0 link veth0 type macvlan mode bridge
ip link add mvt0 link veth0 type macvtap mode bridge
ip link add vx0 type vxlan id 42 dstport 4789 local 127.0.0.1
for d in br0 veth0 veth1 mv0 mvt0 vx0; do ip link set "$d" up; done
ip -d -o link show | sed 's/^[0-9]*: //'
`,
    );
    const line = (name: string) => out.split('\n').find((l) => l.startsWith(`${name}@`) || l.startsWith(`${name}:`)) ?? '';
    expect(line('br0')).toMatch(/ bridge /);
    expect(line('veth1')).toMatch(/master br0/);
    expect(line('veth1')).toMatch(/ veth /);
    expect(line('mv0')).toMatch(/ macvlan mode bridge /);
    expect(line('mvt0')).toMatch(/ macvtap mode bridge /);
    expect(line('vx0')).toMatch(/ vxlan id 42 local 127\.0\.0\.1 .*dstport 4789/);
  });

  it('overlayfs: index, metacopy and redirect_dir are on by default and work (metadata-only copy-up, a renamed directory, the index)', async () => {
    const out = await inGuest(
      'overlay',
      `
mkdir /mnt/l /mnt/u /mnt/w /mnt/m /mnt/l/d
echo lower > /mnt/l/f
# A hard-linked lower file gets an index entry when copied up (index=on).
ln /mnt/l/f /mnt/l/h
mount -t overlay overlay -o lowerdir=/mnt/l,upperdir=/mnt/u,workdir=/mnt/w,index=on,metacopy=on,redirect_dir=on /mnt/m
grep ' /mnt/m ' /proc/mounts
cd /sys/module/overlay/parameters; echo "defaults index=$(cat index) metacopy=$(cat metacopy) redirect_dir=$(cat redirect_dir)"; cd /
chmod 600 /mnt/m/f
mv /mnt/m/d /mnt/m/d2
cat /mnt/m/f
getfattr --absolute-names -n trusted.overlay.metacopy /mnt/u/f >/dev/null && echo metacopy-xattr
getfattr --absolute-names --only-values -n trusted.overlay.redirect /mnt/u/d2; echo
stat -c 'upper blocks %b' /mnt/u/f
ls /mnt/w/index | wc -l
`,
    );
    const [mount, defaults, ...rest] = out.trimEnd().split('\n');
    expect(mount).toMatch(/^overlay \/mnt\/m overlay .*lowerdir=\/mnt\/l,upperdir=\/mnt\/u,workdir=\/mnt\/w/);
    // On by default, as Kata's kernel has them (so /proc/mounts does not list them): containerd does not ask.
    expect(defaults).toBe('defaults index=Y metacopy=Y redirect_dir=Y');
    // The content still comes from the lower file; the upper one holds metadata only (no data copied up).
    expect(rest.slice(0, 4)).toEqual(['lower', 'metacopy-xattr', 'd', 'upper blocks 0']);
    expect(rest[4]).toBe('1');
  });

  it('fanotify and inotify: a watch on /tmp sees a file written there', async () => {
    const out = await inGuest(
      'notify',
      `
cd /tmp
# Writes until the watcher ends: it needs no time to set its mark first.
watch_writes() { while kill -0 "$1" 2>/dev/null; do echo x > /tmp/probe; done; wait "$1"; }
inotifywait -q -t 60 -e close_write /tmp > /run/inotify & watch_writes $!
fatrace -c -s 3 > /run/fanotify & watch_writes $!
cat /run/inotify
grep -m1 -E ' [A-Z]*W[A-Z]* /tmp/probe$' /run/fanotify
`,
    );
    const [inotify, fanotify] = out.split('\n');
    expect(inotify).toBe('/tmp/ CLOSE_WRITE,CLOSE probe');
    expect(fanotify).toMatch(/^sh\(\d+\): [A-Z]*W[A-Z]* \/tmp\/probe$/);
  });

  it('cgroup v2: an io.max throttle on the guest disk is applied and the IO of a process in that group is accounted there', async () => {
    const out = await inGuest(
      'cgroup-io',
      `
dev=$(cat /sys/block/vda/dev)
echo +io > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/osb-io
echo "$dev rbps=1048576 wbps=2097152" > /sys/fs/cgroup/osb-io/io.max
cat /sys/fs/cgroup/osb-io/io.max
mknod /dev/vda b \${dev%:*} \${dev#*:}
sh -c 'echo $$ > /sys/fs/cgroup/osb-io/cgroup.procs; exec dd if=/dev/vda of=/dev/null bs=64k count=8 iflag=direct status=none'
grep "^$dev " /sys/fs/cgroup/osb-io/io.stat
echo "$dev"
`,
    );
    const [max, stat, dev] = out.trimEnd().split('\n');
    expect(max).toBe(`${dev} rbps=1048576 wbps=2097152 riops=max wiops=max`);
    expect(Number(/rbytes=(\d+)/.exec(stat ?? '')?.[1])).toBeGreaterThanOrEqual(8 * 65536);
  });

  it('keys: keyctl adds a user key and reads it back', async () => {
    const out = await inGuest(
      'keys',
      `
id=$(keyctl add user osb-key secret-value @u)
keyctl print "$id"
keyctl describe "$id"
`,
    );
    const [value, described] = out.split('\n');
    expect(value).toBe('secret-value');
    expect(described).toMatch(/^\d+: \S+ +0 +0 user: osb-key$/);
  });
});
