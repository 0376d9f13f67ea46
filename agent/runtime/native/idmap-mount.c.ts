// The C source of the idmapped-mount helper, kept as a string so it travels inside the agent's bundle;
// idmap-helper.ts writes it next to the binary and compiles it with the machine's cc.
export const IDMAP_MOUNT_C = String.raw`/*
 * anybios-idmap-mount SOURCE TARGET HOSTID COUNT
 *
 * Makes TARGET an idmapped bind mount of SOURCE: a file owned by uid/gid N on disk shows as
 * HOSTID + N (for N < COUNT) through TARGET. A system whose user namespace maps 0..COUNT-1 to
 * HOSTID.. then sees its template owned by its own root, while no file of the template changes and the
 * template stays shared by every system. util-linux learned this only in 2.39 (X-mount.idmap);
 * Debian 12 ships 2.38, so the runtime builds this helper (see agent/runtime/idmap-helper.ts).
 *
 * Run as root, inside the system's private mount namespace: the mount vanishes with it.
 * Kernel >= 5.12 (mount_setattr); overlayfs takes an idmapped lower layer from 5.19 on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what) {
  fprintf(stderr, "anybios-idmap-mount: %s: %s\n", what, strerror(errno));
  return 1;
}

static int parse_id(const char *s, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(s, &end, 10);
  return errno || *s == '\0' || *end != '\0' || *out > UINT_MAX;
}

int main(int argc, char **argv) {
  unsigned long host, count;
  if (argc != 5 || parse_id(argv[3], &host) || parse_id(argv[4], &count) || count == 0 || host + count > UINT_MAX) {
    fprintf(stderr, "usage: anybios-idmap-mount SOURCE TARGET HOSTID COUNT\n");
    return 2;
  }
  /* A user namespace that carries the mapping: a child unshares one and waits until we are done. */
  int go[2], ready[2];
  if (pipe2(go, O_CLOEXEC) || pipe2(ready, O_CLOEXEC)) return fail("pipe");
  pid_t child = fork();
  if (child < 0) return fail("fork");
  if (child == 0) {
    char b = 'u';
    close(go[1]);
    close(ready[0]);
    if (unshare(CLONE_NEWUSER)) _exit(1);
    if (write(ready[1], &b, 1) != 1) _exit(1);
    (void)!read(go[0], &b, 1); /* EOF when the parent is done */
    _exit(0);
  }
  close(go[0]);
  close(ready[1]);
  char b;
  if (read(ready[0], &b, 1) != 1) {
    errno = EPERM;
    return fail("unshare(CLONE_NEWUSER) in the helper child");
  }
  char path[64], map[64];
  int n = snprintf(map, sizeof map, "0 %lu %lu\n", host, count);
  const char *files[] = {"setgroups", "uid_map", "gid_map"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "/proc/%d/%s", (int)child, files[i]);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    const char *text = i == 0 ? "deny" : map;
    if (fd < 0 || write(fd, text, i == 0 ? 4 : (size_t)n) < 0) return fail(path);
    close(fd);
  }
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
  int userns = open(path, O_RDONLY | O_CLOEXEC);
  if (userns < 0) return fail(path);
  close(go[1]);
  waitpid(child, NULL, 0);

  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) return fail("open_tree");
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (unsigned long long)userns};
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr)) return fail("mount_setattr(MOUNT_ATTR_IDMAP)");
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, argv[2], MOVE_MOUNT_F_EMPTY_PATH)) return fail("move_mount");
  return 0;
}
`;
