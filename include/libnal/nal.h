/* SPDX-License-Identifier: Apache-2.0 */
/*
 * <libnal/nal.h> -- the public API of libnal, the network abstraction layer
 * used by distcache: addresses, FIFO byte buffers, non-blocking connections,
 * listeners and selectors, plus big-endian encode/decode helpers.
 *
 * distcache-go: declarations match distcache 1.5 exactly (names, types,
 * macros, values); this file is our own.  All object types are opaque.
 */
#ifndef HEADER_LIBNAL_NAL_H
#define HEADER_LIBNAL_NAL_H

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque objects; callers only ever hold pointers. */
typedef struct st_NAL_ADDRESS NAL_ADDRESS;
typedef struct st_NAL_LISTENER NAL_LISTENER;
typedef struct st_NAL_CONNECTION NAL_CONNECTION;
typedef struct st_NAL_SELECTOR NAL_SELECTOR;
typedef struct st_NAL_BUFFER NAL_BUFFER;

/* Kept for source compatibility; no 1.5 function takes them. */
#define NAL_SELECT_FLAG_READ	(unsigned int)0x0001
#define NAL_SELECT_FLAG_SEND	(unsigned int)0x0002
#define NAL_SELECT_FLAG_RW	(NAL_SELECT_FLAG_READ | NAL_SELECT_FLAG_SEND)

/* Process-wide: non-zero leaves Nagle's algorithm on for new TCP sockets. */
void		NAL_config_set_nagle(int enabled);

/* Addresses: "IP:host:port", "IPv4:...", "UNIX:path", "FD:n", "FD:r:w". */
NAL_ADDRESS *	NAL_ADDRESS_new(void);
void		NAL_ADDRESS_free(NAL_ADDRESS *addr);
void		NAL_ADDRESS_reset(NAL_ADDRESS *addr);
int		NAL_ADDRESS_create(NAL_ADDRESS *addr, const char *addr_string,
				unsigned int def_buffer_size);
unsigned int	NAL_ADDRESS_get_def_buffer_size(const NAL_ADDRESS *addr);
int		NAL_ADDRESS_set_def_buffer_size(NAL_ADDRESS *addr,
				unsigned int def_buffer_size);
int		NAL_ADDRESS_can_connect(const NAL_ADDRESS *addr);
int		NAL_ADDRESS_can_listen(const NAL_ADDRESS *addr);

/* Selectors: wait for readiness of the objects bound to them. */
NAL_SELECTOR *	NAL_SELECTOR_new(void);
void		NAL_SELECTOR_free(NAL_SELECTOR *sel);
void		NAL_SELECTOR_reset(NAL_SELECTOR *sel);
int		NAL_SELECTOR_select(NAL_SELECTOR *sel,
				unsigned long usec_timeout,
				int use_timeout);
unsigned int	NAL_SELECTOR_num_objects(const NAL_SELECTOR *sel);
NAL_SELECTOR *	NAL_SELECTOR_new_fdselect(void);
NAL_SELECTOR *	NAL_SELECTOR_new_fdpoll(void);

/* Listeners. */
NAL_LISTENER *	NAL_LISTENER_new(void);
void		NAL_LISTENER_free(NAL_LISTENER *list);
void		NAL_LISTENER_reset(NAL_LISTENER *list);
int		NAL_LISTENER_create(NAL_LISTENER *list,
				const NAL_ADDRESS *addr);
int		NAL_LISTENER_add_to_selector(NAL_LISTENER *list,
				NAL_SELECTOR *sel);
void		NAL_LISTENER_del_from_selector(NAL_LISTENER *list);
int		NAL_LISTENER_finished(const NAL_LISTENER *list);
int		NAL_LISTENER_set_fs_owner(NAL_LISTENER *list,
				const char *ownername,
				const char *groupname);
int		NAL_LISTENER_set_fs_perms(NAL_LISTENER *list,
				const char *octal_string);

/* Connections: a descriptor with a read and a send buffer; all real I/O
 * happens in NAL_CONNECTION_io() after a NAL_SELECTOR_select(). */
NAL_CONNECTION *NAL_CONNECTION_new(void);
void		NAL_CONNECTION_free(NAL_CONNECTION *conn);
void		NAL_CONNECTION_reset(NAL_CONNECTION *conn);
int		NAL_CONNECTION_create(NAL_CONNECTION *conn,
				const NAL_ADDRESS *addr);
int		NAL_CONNECTION_accept(NAL_CONNECTION *conn,
				NAL_LISTENER *list);
int		NAL_CONNECTION_set_size(NAL_CONNECTION *conn,
				unsigned int size);
NAL_BUFFER *	NAL_CONNECTION_get_read(NAL_CONNECTION *conn);
NAL_BUFFER *	NAL_CONNECTION_get_send(NAL_CONNECTION *conn);
const NAL_BUFFER *NAL_CONNECTION_get_read_c(const NAL_CONNECTION *conn);
const NAL_BUFFER *NAL_CONNECTION_get_send_c(const NAL_CONNECTION *conn);
int		NAL_CONNECTION_io(NAL_CONNECTION *conn);
int		NAL_CONNECTION_is_established(const NAL_CONNECTION *conn);
int		NAL_CONNECTION_add_to_selector(NAL_CONNECTION *conn,
				NAL_SELECTOR *sel);
void		NAL_CONNECTION_del_from_selector(NAL_CONNECTION *conn);
int		NAL_CONNECTION_create_pair(NAL_CONNECTION *conn1,
				NAL_CONNECTION *conn2,
				unsigned int def_buffer_size);

/* Buffers: bounded FIFOs whose contents always start at data(). */
NAL_BUFFER *	NAL_BUFFER_new(void);
void		NAL_BUFFER_free(NAL_BUFFER *buf);
void		NAL_BUFFER_reset(NAL_BUFFER *buf);
int		NAL_BUFFER_set_size(NAL_BUFFER *buf,
				unsigned int size);
int		NAL_BUFFER_empty(const NAL_BUFFER *buf);
int		NAL_BUFFER_full(const NAL_BUFFER *buf);
int		NAL_BUFFER_notempty(const NAL_BUFFER *buf);
int		NAL_BUFFER_notfull(const NAL_BUFFER *buf);
unsigned int	NAL_BUFFER_used(const NAL_BUFFER *buf);
unsigned int	NAL_BUFFER_unused(const NAL_BUFFER *buf);
unsigned int	NAL_BUFFER_size(const NAL_BUFFER *buf);
const unsigned char *NAL_BUFFER_data(const NAL_BUFFER *buf);
unsigned int	NAL_BUFFER_write(NAL_BUFFER *buf,
				const unsigned char *ptr,
				unsigned int size);
unsigned int	NAL_BUFFER_read(NAL_BUFFER *buf,
				unsigned char *ptr,
				unsigned int size);
unsigned int	NAL_BUFFER_transfer(NAL_BUFFER *dest, NAL_BUFFER *src,
				unsigned int max);
unsigned char *	NAL_BUFFER_write_ptr(NAL_BUFFER *buf);
void		NAL_BUFFER_wrote(NAL_BUFFER *buf,
				unsigned int size);

/* Cursor-style codec: on success advance *bin, shrink *bin_len, return 1;
 * if *bin_len is too small return 0 and touch nothing.  Big-endian. */
int NAL_decode_uint32(const unsigned char **bin, unsigned int *bin_len,
			unsigned long *val);
int NAL_decode_uint16(const unsigned char **bin, unsigned int *bin_len,
			unsigned int *val);
int NAL_decode_char(const unsigned char **bin, unsigned int *bin_len,
			unsigned char *val);
int NAL_decode_bin(const unsigned char **bin, unsigned int *bin_len,
			unsigned char *val, unsigned int val_len);
int NAL_encode_uint32(unsigned char **bin, unsigned int *bin_len,
			const unsigned long val);
int NAL_encode_uint16(unsigned char **bin, unsigned int *bin_len,
			const unsigned int val);
int NAL_encode_char(unsigned char **bin, unsigned int *bin_len,
			const unsigned char val);
int NAL_encode_bin(unsigned char **bin, unsigned int *bin_len,
			const unsigned char *val, const unsigned int val_len);

#ifdef __cplusplus
}
#endif

#endif /* HEADER_LIBNAL_NAL_H */
