/* slot: see slot.h. */
#include "slot.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* CRC16-XMODEM (polynomial 0x1021, initial value 0), the variant Redis
 * Cluster specifies, one table entry per byte value. */
static const unsigned short crc_table[256] = {
  0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
  0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
  0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
  0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
  0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
  0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
  0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
  0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
  0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
  0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
  0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
  0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
  0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
  0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
  0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
  0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
  0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
  0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
  0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
  0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
  0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
  0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
  0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
  0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
  0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
  0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
  0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
  0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
  0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
  0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
  0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
  0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

unsigned slot_crc16(const char *p, size_t len) {
  unsigned crc = 0;
  size_t i;
  for (i = 0; i < len; i++)
    crc = ((crc << 8) ^ crc_table[((crc >> 8) ^ (unsigned char)p[i]) & 0xff])
          & 0xffff;
  return crc;
}

int slot_of(const char *key, size_t len) {
  const unsigned char *p = (const unsigned char *)key, *end = p + len;
  unsigned crc = 0;
  size_t i;
  /* one pass for the usual key without a '{'; a tag is rare */
  for (; p < end; p++) {
    unsigned c = *p;
    if (c == '{')
      goto tag;
    crc = (crc << 8) ^ crc_table[((crc >> 8) ^ c) & 0xff];
  }
  return (int)(crc & (SLOT_COUNT - 1));
tag:
  i = (size_t)(p - (const unsigned char *)key);
  {
    const char *open = key + i, *close;
    size_t rest = len - i - 1;
    close = memchr(open + 1, '}', rest);
    /* "{}" or no closing brace: the whole key counts */
    if (close && close > open + 1)
      return (int)(slot_crc16(open + 1, (size_t)(close - open - 1)) &
                   (SLOT_COUNT - 1));
    return (int)(slot_crc16(key, len) & (SLOT_COUNT - 1));
  }
}

static int icase_eq(const char *a, size_t an, const char *b, size_t bn) {
  size_t i;
  if (an != bn)
    return 0;
  for (i = 0; i < an; i++)
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
      return 0;
  return 1;
}

/* A non-negative decimal integer that fits an int, else -1. */
static long parse_count(const char *p, size_t n) {
  long v = 0;
  size_t i;
  if (!p || n == 0 || n > 9)
    return -1;
  for (i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

/* Folds the key at argument i into *slot; 0, or -1 on a cross-slot. */
static int add_key(int *slot, int i, slot_arg_fn arg, void *ud) {
  size_t n;
  const char *k = arg(ud, i, &n);
  int s;
  if (!k)
    return 0; /* not a string: the client will refuse the argument */
  s = slot_of(k, n);
  if (*slot == SLOT_NONE)
    *slot = s;
  else if (*slot != s)
    return -1;
  return 0;
}

/* The first key index of a spec, or 0 when it finds none. */
static int begin_search(const slot_spec *sp, int argc, slot_arg_fn arg,
                        void *ud) {
  int i, step, end;
  if (sp->bs_type == SLOT_BS_INDEX)
    return sp->bs_index >= 1 && sp->bs_index < argc ? sp->bs_index : 0;
  /* keyword: forwards from startfrom, or backwards from argc+startfrom */
  if (sp->bs_index > 0) {
    i = sp->bs_index;
    end = argc;
    step = 1;
  } else {
    i = argc + sp->bs_index;
    end = 0;
    step = -1;
  }
  for (; i != end && i >= 1 && i < argc; i += step) {
    size_t n;
    const char *a = arg(ud, i, &n);
    if (a && icase_eq(a, n, sp->kw, sp->kwlen))
      return i + 1 < argc ? i + 1 : 0;
  }
  return 0;
}

int slot_route(const slot_cmd *cmd, int argc, slot_arg_fn arg, void *ud) {
  int slot = SLOT_NONE, unknown = 0, j;
  for (j = 0; j < cmd->nspecs; j++) {
    const slot_spec *sp = &cmd->spec[j];
    int first, last, i, step = sp->fk_step > 0 ? sp->fk_step : 1;
    if (sp->not_key)
      continue;
    if (sp->bs_type == SLOT_BS_UNKNOWN || sp->fk_type == SLOT_FK_UNKNOWN) {
      unknown = 1;
      continue;
    }
    first = begin_search(sp, argc, arg, ud);
    if (first == 0)
      continue;
    if (sp->fk_type == SLOT_FK_RANGE) {
      if (sp->fk_last >= 0)
        last = first + sp->fk_last;
      else if (sp->fk_limit <= 0)
        last = argc + sp->fk_last;
      else /* a limit: 1/limit of the rest are keys (XREAD's STREAMS) */
        last = first + (argc - first) / sp->fk_limit + sp->fk_last;
    } else {
      size_t n;
      long num;
      const char *a;
      if (sp->fk_last < 0 || first + sp->fk_last >= argc)
        continue;
      a = arg(ud, first + sp->fk_last, &n);
      num = parse_count(a, n);
      if (num < 0 || sp->fk_limit < 0 || first + sp->fk_limit >= argc)
        continue;
      first += sp->fk_limit;
      if (num > argc) /* cannot be right; the server will say so */
        continue;
      last = first + (int)num - 1;
    }
    if (last >= argc)
      last = argc - 1; /* an arity error: route by the keys that exist */
    for (i = first; i <= last; i += step)
      if (add_key(&slot, i, arg, ud))
        return SLOT_CROSS;
  }
  if (slot == SLOT_NONE && unknown && argc > 1)
    if (add_key(&slot, 1, arg, ud))
      return SLOT_CROSS;
  return slot;
}
