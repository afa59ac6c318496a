/* The folder scan of a sync, compiled: one lstat per file, on several threads.
 *
 * scan(root, skip_suffix, threads) -> (paths, stats, count)
 *
 *   paths  the files' paths relative to root, '\0'-separated, UTF-8 as the
 *          file system gives them (decode with surrogateescape)
 *   stats  4 native int64 per file: size, mtime_ns, inode, ctime_ns
 *   count  the number of files
 *
 * The order and the rules are those of folder._scan (the pure-Python scan,
 * which stays as the fallback and the reference): depth first; in each
 * folder the names are sorted, its files come first, then its folders one
 * after the other; a symbolic link counts as the file it points at and is
 * skipped when that is not a regular file (links to folders are not
 * followed); names ending in skip_suffix, and everything that is neither a
 * file nor a folder, are skipped; a file or folder that vanishes during the
 * scan is left out. Any other error is raised as OSError with its path.
 *
 * The interpreter lock is released throughout. The calling thread walks:
 * it lists every folder (readdir, which gives each entry's type on the
 * common file systems, so folders need no stat) and sorts its names, and
 * the other threads meanwhile take slices of the names listed so far and
 * lstat them relative to their folder's descriptor; once the walk is done
 * the calling thread takes slices too. Results are laid out in walk order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLICE 512 /* names stat-ed by one thread at a time */
#define MAX_THREADS 16

typedef struct {
    char *abs;     /* the folder's absolute path, with a trailing '/' */
    char *rel;     /* its path relative to root, '' or with a trailing '/' */
    size_t rel_len;
    char **names;  /* the candidate files, sorted */
    size_t count;
    unsigned char *kept; /* per name: 1 if it is a file to report */
    int64_t *stats;      /* per name: 4 values */
    int gone;            /* the folder vanished before its names were stat-ed */
} Folder;

typedef struct {
    Folder **items; /* each record stays where it is while the array grows */
    size_t len, cap;
    size_t names_total;
    /* the first error met, reported after both passes */
    int err;
    char *err_path;
    pthread_mutex_t lock;
    const char *suffix;
    size_t suffix_len;
    /* the stat pass: slices (folder, first name) handed out in order, as the walk lists them */
    size_t next_folder, next_name;
    int walking;
    pthread_cond_t listed;
} Scan;

static void set_error(Scan *s, int err, const char *a, const char *b) {
    pthread_mutex_lock(&s->lock);
    if (!s->err) {
        size_t la = strlen(a), lb = b ? strlen(b) : 0;
        s->err_path = malloc(la + lb + 1);
        if (s->err_path) {
            memcpy(s->err_path, a, la);
            if (b) memcpy(s->err_path + la, b, lb);
            s->err_path[la + lb] = 0;
        }
        s->err = err;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Hand a folder's record to the stat pass (it owns the record from now on). 0 when memory ran out. */
static int publish(Scan *s, Folder *f) {
    pthread_mutex_lock(&s->lock);
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        Folder **grown = realloc(s->items, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        s->items = grown;
        s->cap = cap;
    }
    s->items[s->len++] = f;
    s->names_total += f->count;
    pthread_cond_broadcast(&s->listed);
    pthread_mutex_unlock(&s->lock);
    return 1;
}

static char *join(const char *a, size_t la, const char *b, size_t lb, int slash) {
    char *out = malloc(la + lb + 2);
    if (!out) return NULL;
    memcpy(out, a, la);
    memcpy(out + la, b, lb);
    if (slash) out[la + lb++] = '/';
    out[la + lb] = 0;
    return out;
}

typedef struct {
    char *name; /* first member: by_name compares entries through it */
    unsigned char type;
} Entry;

static int by_name(const void *x, const void *y) {
    return strcmp(((const Entry *)x)->name, ((const Entry *)y)->name);
}

static int ends_with(const char *name, const char *suffix, size_t n) {
    size_t len = strlen(name);
    return n && len >= n && memcmp(name + len - n, suffix, n) == 0;
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void free_entries(Entry *entries, size_t n) {
    for (size_t i = 0; i < n; i++) free(entries[i].name);
    free(entries);
}

/* The type of a name whose directory entry did not say (file systems without d_type): lstat it. */
static unsigned char type_of(Scan *s, int fd, const char *abs, const char *name) {
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) set_error(s, errno, abs, name);
        return 0;
    }
    if (S_ISDIR(st.st_mode)) return DT_DIR;
    if (S_ISREG(st.st_mode)) return DT_REG;
    if (S_ISLNK(st.st_mode)) return DT_LNK;
    return 0;
}

/* Record one folder (fd and the two strings are owned by this call), then walk its folders in
 * order. Returns 0, or -1 when memory ran out. */
static int walk(Scan *s, int fd, char *abs, char *rel, size_t rel_len) {
    DIR *dir = fdopendir(fd);
    if (!dir) {
        set_error(s, errno, abs, NULL);
        close(fd);
        free(abs);
        free(rel);
        return 0;
    }
    Entry *entries = NULL;
    size_t n = 0, cap = 0, files = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(dir);
        if (!e) {
            if (errno) set_error(s, errno, abs, NULL);
            break;
        }
        const char *nm = e->d_name;
        if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
        unsigned char t = e->d_type;
        if (t == DT_UNKNOWN) t = type_of(s, dirfd(dir), abs, nm);
        if (t != DT_DIR && t != DT_REG && t != DT_LNK) continue; /* sockets, pipes, devices */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            Entry *grown = realloc(entries, cap * sizeof *entries);
            if (!grown) goto nomem;
            entries = grown;
        }
        if (!(entries[n].name = strdup(nm))) goto nomem;
        entries[n++].type = t;
        if (t != DT_DIR) files++;
    }
    if (n > 1) qsort(entries, n, sizeof *entries, by_name);

    Folder *f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    f->abs = abs;
    f->rel = rel;
    f->rel_len = rel_len;
    f->count = files;
    f->names = malloc((files ? files : 1) * sizeof *f->names);
    f->kept = calloc(files ? files : 1, 1);
    f->stats = malloc((files ? files : 1) * 4 * sizeof *f->stats);
    if (!f->names || !f->kept || !f->stats) {
        free(f->names);
        free(f->kept);
        free(f->stats);
        free(f);
        goto nomem;
    }
    for (size_t i = 0, j = 0; i < n; i++)
        if (entries[i].type != DT_DIR) {
            f->names[j++] = entries[i].name;
            entries[i].name = NULL;
        }
    if (!publish(s, f)) { /* the strings belong to the record now: free it whole */
        free_names(f->names, f->count);
        free(f->kept);
        free(f->stats);
        free(f);
        free_entries(entries, n);
        closedir(dir);
        free(abs);
        free(rel);
        return -1;
    }

    int result = 0;
    size_t abs_len = strlen(abs);
    for (size_t i = 0; i < n && result == 0; i++) {
        if (entries[i].type != DT_DIR) continue;
        const char *name = entries[i].name;
        size_t ln = strlen(name);
        int sub = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            /* gone, or replaced by something that is not a folder (a link: ELOOP), while we scan */
            if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) set_error(s, errno, abs, name);
            continue;
        }
        char *sub_abs = join(abs, abs_len, name, ln, 1);
        char *sub_rel = join(rel, rel_len, name, ln, 1);
        if (!sub_abs || !sub_rel) {
            free(sub_abs);
            free(sub_rel);
            close(sub);
            result = -1;
            break;
        }
        result = walk(s, sub, sub_abs, sub_rel, rel_len + ln + 1);
    }
    free_entries(entries, n);
    closedir(dir);
    return result;

nomem:
    free_entries(entries, n);
    closedir(dir);
    free(abs);
    free(rel);
    return -1;
}

static void stat_slice(Scan *s, Folder *f, size_t first, size_t last) {
    if (__atomic_load_n(&f->gone, __ATOMIC_RELAXED)) return;
    int fd = open(f->abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            __atomic_store_n(&f->gone, 1, __ATOMIC_RELAXED); /* another thread may set it too */
            return;
        }
        set_error(s, errno, f->abs, NULL);
        return;
    }
    for (size_t i = first; i < last; i++) {
        const char *name = f->names[i];
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT && errno != ENOTDIR) set_error(s, errno, f->abs, name);
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            if (fstatat(fd, name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue; /* dangling, or not a file */
        } else if (!S_ISREG(st.st_mode)) {
            continue; /* replaced by a folder (or something else) since the listing */
        }
        if (ends_with(name, s->suffix, s->suffix_len)) continue;
        int64_t *out = f->stats + 4 * i;
        out[0] = (int64_t)st.st_size;
        out[1] = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        out[2] = (int64_t)st.st_ino;
        out[3] = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
        f->kept[i] = 1;
    }
    close(fd);
}

/* The next slice of names to stat; waits while the walk may list more. NULL: all done. */
static Folder *next_slice(Scan *s, size_t *first, size_t *last) {
    Folder *f = NULL;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->next_folder < s->len && s->next_name >= s->items[s->next_folder]->count) {
            s->next_folder++;
            s->next_name = 0;
        }
        if (s->next_folder < s->len) {
            f = s->items[s->next_folder];
            *first = s->next_name;
            *last = f->count - s->next_name > SLICE ? s->next_name + SLICE : f->count;
            s->next_name = *last;
            break;
        }
        if (!s->walking) break;
        pthread_cond_wait(&s->listed, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return f;
}

static void *stat_worker(void *arg) {
    Scan *s = arg;
    size_t first, last;
    Folder *f;
    while ((f = next_slice(s, &first, &last))) stat_slice(s, f, first, last);
    return NULL;
}

static void free_scan(Scan *s) {
    for (size_t i = 0; i < s->len; i++) {
        Folder *f = s->items[i];
        free_names(f->names, f->count);
        free(f->kept);
        free(f->stats);
        free(f->abs);
        free(f->rel);
        free(f);
    }
    free(s->items);
    free(s->err_path);
    pthread_cond_destroy(&s->listed);
    pthread_mutex_destroy(&s->lock);
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *root_obj = NULL, *suffix_obj = NULL;
    int threads = 2;
    if (!PyArg_ParseTuple(args, "O&O&|i", PyUnicode_FSConverter, &root_obj, PyUnicode_FSConverter, &suffix_obj,
                          &threads))
        return NULL;
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    Scan s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.listed, NULL);
    s.walking = 1;
    const char *root = PyBytes_AS_STRING(root_obj);
    size_t root_len = (size_t)PyBytes_GET_SIZE(root_obj);
    s.suffix = PyBytes_AS_STRING(suffix_obj);
    s.suffix_len = (size_t)PyBytes_GET_SIZE(suffix_obj);
    int nomem = 0;
    char *blob = NULL;
    size_t blob_len = 0, count = 0;
    int64_t *stats = NULL;

    Py_BEGIN_ALLOW_THREADS
    pthread_t ids[MAX_THREADS];
    int started = 0;
    for (int i = 1; i < threads; i++)
        if (pthread_create(&ids[started], NULL, stat_worker, &s) == 0) started++;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        set_error(&s, errno, root, NULL);
    } else {
        int slash = root_len && root[root_len - 1] == '/';
        char *abs = join(root, root_len, "", 0, !slash);
        char *rel = strdup("");
        if (!abs || !rel) {
            free(abs); free(rel); close(fd);
            nomem = 1;
        } else if (walk(&s, fd, abs, rel, 0) != 0) {
            nomem = 1;
        }
    }
    pthread_mutex_lock(&s.lock);
    s.walking = 0;
    pthread_cond_broadcast(&s.listed);
    pthread_mutex_unlock(&s.lock);
    stat_worker(&s); /* the walk is done: help with what is left */
    for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
    if (!nomem && !s.err) {
        for (size_t i = 0; i < s.len; i++) {
            Folder *f = s.items[i];
            for (size_t j = 0; j < f->count; j++)
                if (f->kept[j]) {
                    count++;
                    blob_len += f->rel_len + strlen(f->names[j]) + 1;
                }
        }
        blob = malloc(blob_len ? blob_len : 1);
        stats = malloc((count ? count : 1) * 4 * sizeof *stats);
        if (!blob || !stats) {
            nomem = 1;
        } else {
            char *p = blob;
            int64_t *q = stats;
            for (size_t i = 0; i < s.len; i++) {
                Folder *f = s.items[i];
                for (size_t j = 0; j < f->count; j++) {
                    if (!f->kept[j]) continue;
                    size_t ln = strlen(f->names[j]);
                    memcpy(p, f->rel, f->rel_len);
                    p += f->rel_len;
                    memcpy(p, f->names[j], ln);
                    p += ln;
                    *p++ = 0;
                    memcpy(q, f->stats + 4 * j, 4 * sizeof *q);
                    q += 4;
                }
            }
            if (blob_len) blob_len--; /* no separator after the last path */
        }
    }
    Py_END_ALLOW_THREADS

    PyObject *result = NULL;
    if (nomem) {
        PyErr_NoMemory();
    } else if (s.err) {
        errno = s.err;
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, s.err_path ? s.err_path : root);
    } else {
        result = Py_BuildValue("(y#y#n)", blob, (Py_ssize_t)blob_len, (const char *)stats,
                               (Py_ssize_t)(count * 4 * sizeof *stats), (Py_ssize_t)count);
    }
    free(blob);
    free(stats);
    free_scan(&s);
    Py_DECREF(root_obj);
    Py_DECREF(suffix_obj);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(root, skip_suffix, threads=2) -> (paths, stats, count): the files under root, as folder._scan."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", "The compiled folder scan of a sync.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
