/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reader of dc_client's shared near map (nearmap.h).  Nothing in the
 * map is trusted: sizes are checked against the mapping, a slot is copied
 * before it is looked at, and an entry counts only if its sequence count
 * did not move while it was copied and its sum matches.  The descriptor
 * must come sealed against shrinking, so that a peer cannot truncate the
 * file under the mapping (which would fault the reader).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include "nearmap.h"

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

static uint32_t load32(const unsigned char *p)
{
	return __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE);
}

static uint64_t load64(const unsigned char *p)
{
	return __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
}

int dcnm_map(int fd, struct dcnm *m)
{
	struct stat st;
	struct statfs fs;
	void *p;
	uint32_t n;
	int seals;

	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC ||
	    fstat(fd, &st) != 0 ||
	    st.st_size < DCW_NM_HEADER_SIZE + 2 * DCW_NM_SLOT_SIZE)
		return 0;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 0;
	m->base = p;
	m->size = (size_t)st.st_size;
	n = rd32(m->base + DCW_NM_OFF_SLOTS);
	if (memcmp(m->base, DCW_NM_MAGIC, DCW_NM_MAGIC_LEN) != 0 ||
	    rd32(m->base + DCW_NM_OFF_VERSION) != DCW_NM_VERSION ||
	    rd32(m->base + DCW_NM_OFF_SLOT_SIZE) != DCW_NM_SLOT_SIZE ||
	    rd32(m->base + DCW_NM_OFF_MAX_DATA) != DCW_NM_MAX_DATA ||
	    n < 2 || n % 2 != 0 ||
	    (uint64_t)n * DCW_NM_SLOT_SIZE + DCW_NM_HEADER_SIZE > (uint64_t)m->size) {
		dcnm_unmap(m);
		return 0;
	}
	m->slots = n;
	return 1;
}

void dcnm_unmap(struct dcnm *m)
{
	if (m->base)
		munmap((void *)m->base, m->size);
	m->base = NULL;
	m->size = 0;
	m->slots = 0;
}

int dcnm_lookup(const struct dcnm *m, const unsigned char *id, size_t id_len,
		long long now_ns, unsigned char *out, size_t *len)
{
	unsigned char tmp[DCW_NM_SLOT_SIZE];
	uint64_t gen, b;
	uint32_t i;

	if (!m->base || id_len < 1 || id_len > DCW_NM_MAX_ID)
		return 0;
	gen = load64(m->base + DCW_NM_OFF_GEN);
	if ((gen & 1) || now_ns >= (long long)load64(m->base + DCW_NM_OFF_LEASE))
		return 0;
	b = fnv(FNV_OFFSET, id, id_len) % (m->slots / 2) * 2;
	for (i = 0; i < 2; i++) {
		const unsigned char *s = m->base + DCW_NM_HEADER_SIZE + (b + i) * DCW_NM_SLOT_SIZE;
		uint32_t seq = load32(s + DCW_NM_SLOT_SEQ), il, dl;
		uint64_t sum;

		if (seq & 1)
			continue;
		/* lengths first: copy only what the entry can use */
		memcpy(tmp, s, DCW_NM_SLOT_ID);
		il = rd32(tmp + DCW_NM_SLOT_ID_LEN);
		dl = rd32(tmp + DCW_NM_SLOT_DATA_LEN);
		if (il != id_len || dl < 1 || dl > DCW_NM_MAX_DATA)
			continue;
		memcpy(tmp + DCW_NM_SLOT_ID, s + DCW_NM_SLOT_ID, il);
		memcpy(tmp + DCW_NM_SLOT_DATA, s + DCW_NM_SLOT_DATA, dl);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n((const uint32_t *)(const void *)(s + DCW_NM_SLOT_SEQ), __ATOMIC_RELAXED) != seq)
			continue;
		if (rd64(tmp + DCW_NM_SLOT_GEN) != gen || (long long)rd64(tmp + DCW_NM_SLOT_EXPIRES) <= now_ns ||
		    memcmp(tmp + DCW_NM_SLOT_ID, id, id_len) != 0)
			continue;
		sum = fnv(FNV_OFFSET, tmp + DCW_NM_SLOT_ID_LEN, DCW_NM_SLOT_SUM - DCW_NM_SLOT_ID_LEN);
		sum = fnv(sum, id, id_len);
		sum = fnv(sum, tmp + DCW_NM_SLOT_DATA, dl);
		if (sum != rd64(tmp + DCW_NM_SLOT_SUM))
			continue;
		/* not flushed meanwhile */
		if (load64(m->base + DCW_NM_OFF_GEN) != gen)
			return 0;
		memcpy(out, tmp + DCW_NM_SLOT_DATA, dl);
		*len = dl;
		return 1;
	}
	return 0;
}

int dcnm_stale(const struct dcnm *m, long long now_ns, long long grace_ns)
{
	if (!m->base)
		return 1;
	return now_ns - (long long)load64(m->base + DCW_NM_OFF_LEASE) > grace_ns;
}

static long long mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits until fd is readable or deadline_us: 1 readable, 0 not. */
static int wait_in(int fd, long long deadline_us)
{
	for (;;) {
		long long rest = deadline_us - mono_us();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct timespec ts;
		int r;

		if (rest < 0)
			rest = 0;
		ts.tv_sec = rest / 1000000;
		ts.tv_nsec = (rest % 1000000) * 1000;
		r = ppoll(&p, 1, &ts, NULL);
		if (r > 0)
			return 1;
		if (r == 0 || errno != EINTR)
			return 0;
	}
}

/* Closes every descriptor the control messages of h carry; the first
 * one, if any, is returned open instead. */
static int take_fds(struct msghdr *h)
{
	struct cmsghdr *cm;
	int keep = -1;

	for (cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
		size_t i, n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
			if (keep < 0)
				keep = fd;
			else
				close(fd);
		}
	}
	return keep;
}

int dcnm_probe(int fd, uint32_t uid, long long deadline_us, struct dcnm *m)
{
	unsigned char req[DCW_HEADER_SIZE + DCW_NM_PROBE_ID_LEN];
	unsigned char buf[256];
	union {
		struct cmsghdr h;
		unsigned char b[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct dcw_part part = { (const unsigned char *)DCW_NM_PROBE_ID, DCW_NM_PROBE_ID_LEN };
	struct dcw_msg msg;
	size_t len, have = 0;
	int mfd = -1, st, r = DCNM_FAILED;

	len = dcw_encode(req, 0, uid, DCW_OP_GET, &part, 1);
	if (len == 0 || send(fd, req, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len)
		return DCNM_FAILED;	/* an idle unix socket takes a small request whole */
	for (;;) {
		struct iovec iov = { buf + have, sizeof buf - have };
		struct msghdr h;
		ssize_t n;

		memset(&h, 0, sizeof h);
		h.msg_iov = &iov;
		h.msg_iovlen = 1;
		h.msg_control = ctl.b;
		h.msg_controllen = sizeof ctl.b;
		n = recvmsg(fd, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_in(fd, deadline_us)) {
				r = DCNM_TIMEOUT;
				goto out;
			}
			continue;
		}
		if (n <= 0)
			goto out;
		{
			int got = take_fds(&h);

			if (got >= 0) {
				if (mfd >= 0)
					close(got);
				else
					mfd = got;
			}
		}
		have += (size_t)n;
		st = dcw_decode(buf, have, DCW_WANT_RESPONSES, &msg);
		if (st == DCW_CORRUPT)
			goto out;
		if (st == DCW_DONE)
			break;
		if (have == sizeof buf)
			goto out;	/* no answer to the probe is this long */
	}
	if (msg.uid != uid || msg.op != DCW_OP_GET || msg.used != have)
		goto out;
	r = DCNM_NONE;
	if (mfd >= 0 && msg.len == DCW_NM_MAGIC_LEN && memcmp(msg.payload, DCW_NM_MAGIC, DCW_NM_MAGIC_LEN) == 0 &&
	    dcnm_map(mfd, m))
		r = DCNM_MAPPED;
out:
	if (mfd >= 0)
		close(mfd);
	return r;
}
