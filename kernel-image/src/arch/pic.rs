//! The legacy 8259A interrupt controllers. The kernel uses the local APICs only, so it moves
//! the PICs' vectors off the CPU exception range (the BIOS leaves IRQ 0 at vector 8, which
//! would look like a double fault) and masks every line.

use super::cpu::outb;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// Remaps the PICs to vectors `base..base + 16` and masks all sixteen lines.
pub fn remap_and_mask(base: u8) {
    // SAFETY: ports 0x20/0x21/0xA0/0xA1 are the 8259A pair on every PC; the ICW1..ICW4
    // sequence (8259A data sheet) only re-initialises them, and all lines end masked.
    unsafe {
        outb(MASTER_COMMAND, 0x11); // ICW1: edge, cascade, ICW4 needed
        outb(SLAVE_COMMAND, 0x11);
        outb(MASTER_DATA, base); // ICW2: vector base
        outb(SLAVE_DATA, base + 8);
        outb(MASTER_DATA, 0x04); // ICW3: slave on IRQ 2
        outb(SLAVE_DATA, 0x02); // ICW3: cascade identity
        outb(MASTER_DATA, 0x01); // ICW4: 8086 mode
        outb(SLAVE_DATA, 0x01);
        outb(MASTER_DATA, 0xff); // OCW1: mask everything
        outb(SLAVE_DATA, 0xff);
    }
}
