/* resp.h - Redis commands in RESP, the protocol's request form: "*<argc>\r\n", then
 * "$<len>\r\n<bytes>\r\n" per argument. Sized first, then written in place, without printf: the
 * db module builds every command this way and hands hiredis the finished bytes. Pure. */
#ifndef HERALD_DB_RESP_H
#define HERALD_DB_RESP_H

#include <stddef.h>

/* Bytes of the "*<argc>\r\n" header, of one argument of len bytes. */
size_t resp_argc_size(size_t argc);
size_t resp_arg_size(size_t len);
/* Write the header, an argument, at p (room for the size above); return the end. */
char *resp_put_argc(char *p, size_t argc);
char *resp_put_arg(char *p, const void *s, size_t len);

#endif
