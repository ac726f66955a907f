#include "_speedups.h"


/* rewrite_known(body, lines) is poller.rewrite's steady state: a page whose
 * every series key is in `lines` (key -> None to drop it, b"" to keep the line
 * as written, or the key to write instead), rewritten line by line. TYPE and
 * HELP lines stay for the families that keep a sample; other comments and
 * blank lines go. Returns (body, samples kept), or None for anything the
 * Python pass must decide: a key not in `lines`, a line that does not parse,
 * a family whose lines are not all in one run (Python groups them). */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int
buffer_put(Buffer *b, const char *s, Py_ssize_t n)
{
    if (b->len + n > b->cap) {
        Py_ssize_t cap = (b->cap + n) * 2;
        char *data = PyMem_Realloc(b->data, (size_t)cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

/* Suffixes that put a sample in a typed family named without them (rewrite._SUFFIXES). */
static const char *family_suffixes[] = {"_bucket", "_count", "_sum", "_total", "_created", "_info"};
#define N_FAMILY_SUFFIXES 6
#define PENDING_MAX 8

/* The length of `name` without the family suffix it ends with, or 0. */
static Py_ssize_t
base_len(const char *name, Py_ssize_t n)
{
    for (int k = 0; k < N_FAMILY_SUFFIXES; k++) {
        Py_ssize_t len = (Py_ssize_t)strlen(family_suffixes[k]);
        if (n > len && memcmp(name + n - len, family_suffixes[k], (size_t)len) == 0) {
            return n - len;
        }
    }
    return 0;
}

/* families_find with the name's hash already taken (name_hash), so a family's
 * few lookups hash its name once. */
static Family *
families_find_hashed(Families *t, const char *name, Py_ssize_t n, size_t h)
{
    size_t i = h & t->mask;
    while (t->slots[i].name != NULL) {
        if (t->slots[i].len == n && memcmp(t->slots[i].name, name, (size_t)n) == 0) {
            return &t->slots[i];
        }
        i = (i + 1) & t->mask;
    }
    return &t->slots[i];
}

static int
has(Families *t, const char *name, Py_ssize_t n, size_t h)
{
    return n > 0 && families_find_hashed(t, name, n, h)->name != NULL;
}

static int
remember(Families *seen, const char *name, Py_ssize_t n, size_t h)
{
    if (n == 0) return 0;
    Family *slot = families_find_hashed(seen, name, n, h);
    if (slot->name != NULL) return 0;
    if ((seen->used + 1) * 2 > seen->mask + 1) {
        if (families_grow(seen) < 0) return -2;
        slot = families_find_hashed(seen, name, n, h);
    }
    slot->name = name;
    slot->len = n;
    slot->flags = 0;
    seen->used++;
    return 0;
}

/* A family left behind: its name, and its base if it has one. */
static int
pass_family(Families *seen, Families *bases, const char *name, Py_ssize_t n, size_t h)
{
    if (remember(seen, name, n, h) < 0) return -2;
    Py_ssize_t base = base_len(name, n);
    return base ? remember(bases, name, base, name_hash(name, base)) : 0;
}

/* Whether sample `name` belongs to the family `fam` (typed: a TYPE line named it). */
static int
in_family(const char *name, Py_ssize_t n, const char *fam, Py_ssize_t fn, int typed)
{
    if (n == fn && memcmp(name, fam, (size_t)n) == 0) return 1;
    if (!typed || n <= fn || memcmp(name, fam, (size_t)fn) != 0) return 0;
    for (int k = 0; k < N_FAMILY_SUFFIXES; k++) {
        Py_ssize_t len = (Py_ssize_t)strlen(family_suffixes[k]);
        if (n - fn == len && memcmp(name + fn, family_suffixes[k], (size_t)len) == 0) return 1;
    }
    return 0;
}

PyObject *
rewrite_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])
        || !PyList_Check(args[3]) || PyList_GET_SIZE(args[2]) != PyList_GET_SIZE(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "rewrite_known(body: bytes, lines: dict, keys: list, actions: list)");
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    PyObject *lines = args[1];
    /* The keys of the last page in order, and lines[key] for each: a page like
     * the last one costs a memcmp per sample instead of a bytes object, a hash
     * and a lookup. Entries are only ever taken from `lines`, so they stay
     * right however a call ends; the caller replaces both when `lines` changes. */
    PyObject *order_keys = args[2], *order_actions = args[3];
    Py_ssize_t index = 0;
    Buffer out = {NULL, 0, 0};
    /* Families already passed, and the names they would belong to if typed
     * (node_x_total: node_x): a family seen twice is Python's to group. */
    Families seen = {PyMem_Calloc(512, sizeof(Family)), 511, 0, NULL, 0, NULL};
    Families bases = {PyMem_Calloc(512, sizeof(Family)), 511, 0, NULL, 0, NULL};
    if (seen.slots == NULL || bases.slots == NULL) {
        PyMem_Free(seen.slots);
        PyMem_Free(bases.slots);
        return PyErr_NoMemory();
    }
    out.cap = size + 64;
    out.data = PyMem_Malloc((size_t)out.cap);
    if (out.data == NULL) {
        PyMem_Free(seen.slots);
        PyMem_Free(bases.slots);
        return PyErr_NoMemory();
    }
    /* The current family: a run of TYPE/HELP lines and the samples after it. */
    const char *fam = NULL;
    Py_ssize_t fam_len = 0;
    size_t fam_hash = 0;
    int typed = 0, flushed = 0, npending = 0, bail = 0;
    Py_ssize_t pending[PENDING_MAX][2];
    Py_ssize_t kept = 0;
    Py_ssize_t pos = 0;
    while (pos < size && !bail) {
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t line_start = pos;
        pos = end + 1;
        if (end == line_start) continue;
        if (body[line_start] == '#') {
            /* `#[ \t]+(TYPE|HELP)[ \t]+name`, as rewrite._COMMENT; other comments go */
            Py_ssize_t i = line_start + 1, j;
            if (i >= end || !is_blank(body[i])) continue;
            while (i < end && is_blank(body[i])) i++;
            if (end - i < 5 || (memcmp(body + i, "TYPE", 4) != 0 && memcmp(body + i, "HELP", 4) != 0)
                || !is_blank(body[i + 4])) {
                continue;
            }
            int is_type = body[i] == 'T';
            i += 4;
            while (i < end && is_blank(body[i])) i++;
            if (i >= end || !name_start(body[i])) continue;
            for (j = i; j < end && name_char(body[j]); j++);
            if (fam == NULL || j - i != fam_len || memcmp(body + i, fam, (size_t)fam_len) != 0) {
                /* A new family: never seen, nor the base of one seen. */
                if (fam != NULL && pass_family(&seen, &bases, fam, fam_len, fam_hash) < 0) {
                    goto error;
                }
                size_t h = name_hash(body + i, j - i);
                if (has(&seen, body + i, j - i, h) || has(&bases, body + i, j - i, h)) {
                    bail = 1;
                    break;
                }
                fam = body + i;
                fam_len = j - i;
                fam_hash = h;
                typed = flushed = npending = 0;
            }
            typed |= is_type;
            if (flushed) {
                bail = 1; /* a comment after its family's samples: Python moves it */
                break;
            }
            if (npending == PENDING_MAX) {
                bail = 1;
                break;
            }
            pending[npending][0] = line_start;
            pending[npending][1] = end - line_start;
            npending++;
            continue;
        }
        if (is_blank(body[line_start])) {
            /* Python spells the values of such a page anew (its lines and samples no
             * longer align, or the line does not start with its key): its to do. */
            bail = 1;
            break;
        }
        const char *s = body + line_start;
        Py_ssize_t i = line_start;
        Py_ssize_t n = end - i, k = 0;
        if (!name_start(s[0])) {
            bail = 1;
            break;
        }
        while (k < n && name_char(s[k])) k++;
        Py_ssize_t name_len = k, key_end = k;
        while (k < n && is_blank(s[k])) k++;
        if (k < n && s[k] == '{') {
            k = skip_label_block(s, k, n);
            if (k < 0) {
                bail = 1;
                break;
            }
            key_end = k;
            while (k < n && is_blank(s[k])) k++;
        }
        Py_ssize_t start = k;
        while (k < n && !is_blank(s[k])) k++;
        if (check_float(s + start, k - start) != 1) {
            bail = 1;
            break;
        }
        while (k < n && is_blank(s[k])) k++;
        if (k < n) {
            start = k;
            while (k < n && !is_blank(s[k])) k++;
            long long ms;
            if (!parse_int64(s + start, k - start, &ms)) {
                bail = 1;
                break;
            }
            while (k < n && is_blank(s[k])) k++;
            if (k != n) {
                bail = 1;
                break;
            }
        }
        /* Its family: the current one, or (no TYPE/HELP before it) its own name. */
        if (fam == NULL || !in_family(s, name_len, fam, fam_len, typed)) {
            if (fam != NULL && pass_family(&seen, &bases, fam, fam_len, fam_hash) < 0) {
                goto error;
            }
            size_t h = name_hash(s, name_len);
            Py_ssize_t base = base_len(s, name_len);
            if (has(&seen, s, name_len, h) || has(&bases, s, name_len, h)
                || (base && has(&seen, s, base, name_hash(s, base)))) {
                bail = 1;
                break;
            }
            fam = s;
            fam_len = name_len;
            fam_hash = h;
            typed = flushed = npending = 0;
        }
        PyObject *found = NULL;
        if (index < PyList_GET_SIZE(order_keys)) {
            PyObject *known = PyList_GET_ITEM(order_keys, index);
            if (PyBytes_GET_SIZE(known) == key_end
                && memcmp(PyBytes_AS_STRING(known), s, (size_t)key_end) == 0) {
                found = PyList_GET_ITEM(order_actions, index);
            }
        }
        if (found == NULL) {
            PyObject *key = PyBytes_FromStringAndSize(s, key_end);
            if (key == NULL) goto error;
            found = PyDict_GetItemWithError(lines, key);
            if (found == NULL) {
                Py_DECREF(key);
                if (PyErr_Occurred()) goto error;
                bail = 1;
                break;
            }
            if (index < PyList_GET_SIZE(order_keys)) {
                PyList_SetItem(order_keys, index, key); /* steals key */
                PyList_SetItem(order_actions, index, Py_NewRef(found));
            } else {
                int failed = PyList_Append(order_keys, key) || PyList_Append(order_actions, found);
                Py_DECREF(key);
                if (failed) goto error;
            }
        }
        index++;
        if (found == Py_None) continue;
        if (!PyBytes_Check(found)) {
            bail = 1;
            break;
        }
        if (!flushed) {
            for (int p = 0; p < npending; p++) {
                if (buffer_put(&out, body + pending[p][0], pending[p][1]) < 0
                    || buffer_put(&out, "\n", 1) < 0) {
                    goto error;
                }
            }
            flushed = 1;
        }
        Py_ssize_t written = PyBytes_GET_SIZE(found);
        if ((written ? buffer_put(&out, PyBytes_AS_STRING(found), written)
                     : buffer_put(&out, s, key_end)) < 0
            || buffer_put(&out, s + key_end, n - key_end) < 0 || buffer_put(&out, "\n", 1) < 0) {
            goto error;
        }
        kept++;
    }
    PyMem_Free(seen.slots);
    PyMem_Free(bases.slots);
    if (!bail && index < PyList_GET_SIZE(order_keys)
        && (PyList_SetSlice(order_keys, index, PyList_GET_SIZE(order_keys), NULL) < 0
            || PyList_SetSlice(order_actions, index, PyList_GET_SIZE(order_actions), NULL) < 0)) {
        PyMem_Free(out.data);
        return NULL;
    }
    if (bail) {
        PyMem_Free(out.data);
        Py_RETURN_NONE;
    }
    PyObject *result = Py_BuildValue("(y#n)", out.data, kept ? out.len : 0, kept);
    PyMem_Free(out.data);
    return result;
error:
    PyMem_Free(seen.slots);
    PyMem_Free(bases.slots);
    PyMem_Free(out.data);
    return NULL;
}
