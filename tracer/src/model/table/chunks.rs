//! A dense array of rows in fixed-size chunks. A growing `Vec` of a million rows reallocates to
//! twice its size and may copy (old and new buffers both resident: the process's peak memory);
//! chunks never move, and emptied ones are given back.

/// Rows per chunk: 4096 rows of 40 bytes are 160 KiB, a small step against a million.
const CHUNK: usize = 4096;

pub struct Chunks<R> {
    chunks: Vec<Vec<R>>,
    /// One emptied chunk kept back, so churn at a chunk boundary does not allocate each time.
    spare: Option<Vec<R>>,
    len: usize,
}

impl<R> Default for Chunks<R> {
    fn default() -> Self {
        Chunks {
            chunks: Vec::new(),
            spare: None,
            len: 0,
        }
    }
}

impl<R: Copy> Chunks<R> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: u32) -> Option<&R> {
        let i = i as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut R> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    /// Appends `row`; returns its number.
    pub fn push(&mut self, row: R) -> u32 {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            let chunk = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            self.chunks.push(chunk);
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(row);
        }
        self.len += 1;
        u32::try_from(self.len - 1).unwrap_or(u32::MAX)
    }

    /// Removes the last row.
    fn pop(&mut self) -> Option<R> {
        let last = self.chunks.last_mut()?;
        let row = last.pop();
        if last.is_empty()
            && let Some(empty) = self.chunks.pop()
            && self.spare.is_none()
        {
            self.spare = Some(empty);
        }
        self.len = self.len.saturating_sub(usize::from(row.is_some()));
        row
    }

    /// Removes row `i`, moving the last row into its place.
    pub fn swap_remove(&mut self, i: u32) -> Option<R> {
        if i as usize >= self.len {
            return None;
        }
        let last = self.pop()?;
        match self.get_mut(i) {
            Some(slot) => Some(std::mem::replace(slot, last)),
            None => Some(last), // `i` was the last row
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.chunks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut R> {
        self.chunks.iter_mut().flatten()
    }
}
